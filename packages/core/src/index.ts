export * from './codec/constants.ts';
export { type Frame, Framer, type FramerOptions } from './codec/framer.ts';
export { BodyReader, decodeText } from './codec/reader.ts';
export { Writer } from './codec/writer.ts';
export * from './errors.ts';
