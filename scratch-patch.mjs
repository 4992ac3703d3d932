import jsonld from "@fedify/vocab-runtime/jsonld";
const stats = new Map();
for (const name of ["expand", "compact", "canonize", "normalize", "flatten", "toRDF"]) {
  const orig = jsonld[name];
  if (typeof orig !== "function") continue;
  jsonld[name] = async function (...args) {
    const frames = (new Error().stack ?? "").split("\n").slice(2).filter(l => !/jsonld|scratch-patch|node:internal|vocab-runtime/.test(l)).slice(0, 4).map(l => l.trim().replace(/\(.*node_modules\//, "(").replace(/file:\/\/\/work\/main\//, ""));
    const k = name + " <- " + frames.join(" <- ");
    const t = performance.now();
    try { return await orig.apply(this, args); }
    finally { const s = stats.get(k) ?? { n: 0, ms: 0 }; s.n++; s.ms += performance.now() - t; stats.set(k, s); }
  };
}
process.on("exit", () => {
  for (const [k, s] of [...stats].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) process.stderr.write(`${String(s.n).padStart(6)} ${s.ms.toFixed(0).padStart(7)}ms  ${k}\n`);
});
