export * from './codec/backend.ts';
export * from './codec/constants.ts';
export { type Frame, Framer, type FramerOptions } from './codec/framer.ts';
export * from './codec/frontend.ts';
export { BodyReader, decodeText } from './codec/reader.ts';
export * from './codec/startup.ts';
export { Writer } from './codec/writer.ts';
export * from './errors.ts';
