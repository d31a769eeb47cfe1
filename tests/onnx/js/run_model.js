// Run an ONNX model with ONNX Runtime for Node.js (onnxruntime-node).
//   node run_model.js MODEL.onnx SPEC.json OUT_DIR
// SPEC.json lists the inputs: [{"name", "dtype": "float32" | "int64", "shape", "file"}] where
// each file holds the raw little-endian values. Every output is written to OUT_DIR/NAME.bin
// and its dims and type are printed as JSON.
"use strict";
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");

const ARRAYS = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array };

async function main() {
  const [modelPath, specPath, outDir] = process.argv.slice(2);
  const spec = JSON.parse(fs.readFileSync(specPath, "utf8"));
  const session = await ort.InferenceSession.create(modelPath);
  const feeds = {};
  for (const input of spec) {
    const bytes = fs.readFileSync(input.file);
    const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
    feeds[input.name] = new ort.Tensor(input.dtype, new ARRAYS[input.dtype](copy), input.shape);
  }
  const results = await session.run(feeds);
  const report = {};
  for (const name of session.outputNames) {
    const t = results[name];
    const data = t.data;
    fs.writeFileSync(path.join(outDir, `${name}.bin`), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    report[name] = { dims: Array.from(t.dims), type: t.type };
  }
  console.log(JSON.stringify(report));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
