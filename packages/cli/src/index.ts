export { demoLines } from './commands/demo.ts';
