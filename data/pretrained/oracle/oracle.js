// Oracle for the Go forward pass: runs an nsfwjs model in TensorFlow.js (wasm
// backend) up to named layers. Test- and benchmark-only: package oracle
// embeds it and runs it with node.
//
// usage: node oracle.js TFJS_PREFIX MODEL_DIR TARGETS MODE IN OUT N H W
//   TARGETS is a comma-separated list of LAYER@SIZE; the weights are read
//   once and a truncated model is built for each target.
//   MODE "check": IN holds N grey H×W uint8 images; for target i writes
//     OUT.i.input (the preprocessed float32 NHWC input, nsfwjs's scaling) and
//     OUT.i.output (the target layer's float32 output for that input).
//   MODE "bench": times N random images as one batch (best of 3, after a
//     warm-up) for the first target and prints JSON {"ms_per_image": ...,
//     "cpu_ms_per_image": ..., "threads": ...} (wall and process CPU time,
//     each the best of the three); IN and OUT are ignored.
"use strict";
const fs = require("fs");
const path = require("path");
const [prefix, modelDir, targetsArg, mode, inPath, outPath, nArg, hArg, wArg] = process.argv.slice(2);
const n = +nArg, h = +hArg, w = +wArg;
const mods = path.join(prefix, "node_modules");
const tf = require(path.join(mods, "@tensorflow/tfjs"));
const wasm = require(path.join(mods, "@tensorflow/tfjs-backend-wasm"));

// truncated returns the topology cut at target, with SIZE×SIZE inputs: only
// the target's ancestors are kept, so the classifier head (sized for the
// native resolution) is never built.
function truncated(modelTopology, target, size) {
  const topo = JSON.parse(JSON.stringify(modelTopology));
  const cfg = topo.model_config.config;
  const byName = new Map(cfg.layers.map((l) => [l.name, l]));
  if (!byName.has(target)) throw new Error("no layer " + target);
  const keep = new Set();
  const visit = (name) => {
    if (keep.has(name)) return;
    keep.add(name);
    for (const node of byName.get(name).inbound_nodes) for (const inb of node) visit(inb[0]);
  };
  visit(target);
  cfg.layers = cfg.layers.filter((l) => keep.has(l.name));
  for (const l of cfg.layers) if (l.class_name === "InputLayer") l.config.batch_input_shape = [null, size, size, 3];
  cfg.output_layers = [[target, 0, 0]];
  return topo;
}

async function main() {
  wasm.setWasmPaths(path.join(mods, "@tensorflow/tfjs-backend-wasm/dist") + path.sep);
  if (!(await tf.setBackend("wasm"))) throw new Error("wasm backend unavailable");
  await tf.ready();

  const file = require(path.resolve(modelDir, "model.min.js"));
  const specs = [], bufs = [];
  for (const group of file.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) bufs.push(Buffer.from(require(path.resolve(modelDir, p + ".min.js")), "base64"));
  }
  const all = Buffer.concat(bufs);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const targets = targetsArg.split(",").map((t) => {
    const [layer, size] = t.split("@");
    return { layer, size: +size };
  });
  const load = (t) => tf.loadLayersModel(
    { load: async () => ({ modelTopology: truncated(file.modelTopology, t.layer, t.size), weightSpecs: specs, weightData }) },
    { strict: false });

  if (mode === "check") {
    const grey = fs.readFileSync(inPath);
    if (grey.length !== n * h * w) throw new Error(`input has ${grey.length} bytes, want ${n * h * w}`);
    const shapes = [];
    for (const [i, t] of targets.entries()) {
      const model = await load(t);
      // nsfwjs's NSFWJS.infer: toFloat, div(255), resizeBilinear(alignCorners=true).
      const input = tf.tidy(() => {
        const g = tf.tensor4d(new Uint8Array(grey), [n, h, w, 1], "int32").toFloat().div(tf.scalar(255));
        const rgb = tf.concat([g, g, g], 3);
        return tf.image.resizeBilinear(rgb, [t.size, t.size], true);
      });
      const out = model.predict(input);
      fs.writeFileSync(`${outPath}.${i}.input`, Buffer.from((await input.data()).buffer));
      fs.writeFileSync(`${outPath}.${i}.output`, Buffer.from((await out.data()).buffer));
      shapes.push(out.shape);
      tf.dispose([input, out]);
      model.dispose();
    }
    console.log(JSON.stringify({ shapes }));
  } else if (mode === "bench") {
    const t = targets[0];
    const model = await load(t);
    const x = tf.randomUniform([n, t.size, t.size, 3]);
    const warm = model.predict(x.slice([0, 0, 0, 0], [1, t.size, t.size, 3]));
    await warm.data();
    let best = Infinity, bestCPU = Infinity;
    for (let rep = 0; rep < 3; rep++) {
      const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
      const y = model.predict(x);
      await y.data();
      const c = process.cpuUsage(c0);
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
      bestCPU = Math.min(bestCPU, (c.user + c.system) / 1e3);
      y.dispose();
    }
    console.log(JSON.stringify({ ms_per_image: best / n, cpu_ms_per_image: bestCPU / n, threads: wasm.getThreadsCount() }));
  } else {
    throw new Error("mode must be check or bench");
  }
}
main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
