// A jest transform without dependencies: Node's own type stripping (node:module, Node >= 22.13). "transform" mode also
// turns enums and namespaces into JavaScript, should a generated client use them.
const { stripTypeScriptTypes } = require("node:module");

module.exports = {
  process(source) {
    return { code: stripTypeScriptTypes(source, { mode: "transform" }) };
  },
};
