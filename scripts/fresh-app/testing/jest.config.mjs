// Jest in native ESM mode (run as `node --experimental-vm-modules node_modules/jest/bin/jest.js`): the test is .mjs;
// the app's TypeScript (and Prisma's generated client) goes through strip-types.cjs, and is ESM too.
export default {
  testEnvironment: "node",
  testMatch: ["<rootDir>/test/*.jest.mjs"],
  extensionsToTreatAsEsm: [".ts"],
  moduleFileExtensions: ["js", "mjs", "cjs", "ts", "json"],
  transform: { "\\.ts$": "<rootDir>/strip-types.cjs" },
  // TypeScript's ESM imports name the .js a file compiles to ("./shop.js"); here the .ts is loaded itself.
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
};
