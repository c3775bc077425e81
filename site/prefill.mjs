// Seed Observable Framework's npm cache from node_modules, so that `observable build` needs
// no network: Framework resolves `npm:` imports (implicit ones too: Plot, Inputs, d3, html,
// FileAttachment(...).parquet()) from <root>/.observablehq/cache/_npm/<name>@<version>/ and
// never downloads an entry that exists (see /work/shared/observable-offline.md).
//
//   node prefill.mjs CACHE_DIR     # writes CACHE_DIR/_npm/...; CACHE_DIR/.stamp when done
//
// Each package's browser ESM entry is bundled by esbuild into one self-contained _esm.js
// (no imports left for Framework to chase); files a package loads at run time (parquet-wasm's
// .wasm) are copied beside it. The versions are the exact ones package.json pins.
import {build} from "esbuild";
import {copyFile, mkdir, readFile, readdir, rm, writeFile} from "node:fs/promises";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

// name -> files to copy (package-relative paths) besides the bundled entry, and whether the
// entry has a default export (`export *` leaves it out; parquet-wasm's init function is one).
const PACKAGES = {
  "@observablehq/plot": {files: []},
  "@observablehq/inputs": {files: []},
  "apache-arrow": {files: []},
  "d3": {files: []},
  "htl": {files: []},
  "isoformat": {files: []},
  "parquet-wasm": {files: ["esm/parquet_wasm_bg.wasm"], default: true}
};

// Framework's client bundle names many more packages (recommended libraries, sample
// datasets, JSX) than our pages load; building it only looks up their versions, so an empty
// entry, found by scanning Framework's client code, answers without a download.
async function unused() {
  const client = join(here, "node_modules", "@observablehq", "framework", "dist", "client");
  const names = new Set();
  for (const file of await readdir(client, {recursive: true})) {
    if (!file.endsWith(".js")) continue;
    for (const [, specifier] of (await readFile(join(client, file), "utf8"))
      .matchAll(/["']npm:([^"']+)["']/g)) {
      const parts = specifier.split("/");
      names.add(parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]);
    }
  }
  return [...names].filter((name) => !(name in PACKAGES)).sort();
}

async function version(name) {
  const pkg = JSON.parse(await readFile(join(here, "node_modules", name, "package.json"), "utf8"));
  return pkg.version;
}

async function prefill(cache) {
  await rm(join(cache, ".stamp"), {force: true});
  for (const [name, {files, default: hasDefault}] of Object.entries(PACKAGES)) {
    const dir = join(cache, "_npm", `${name}@${await version(name)}`);
    await rm(dir, {recursive: true, force: true});
    await mkdir(dir, {recursive: true});
    await build({
      stdin: {contents: `export * from ${JSON.stringify(name)};` +
                        (hasDefault ? `export {default} from ${JSON.stringify(name)};` : ""),
              resolveDir: here, loader: "js"},
      bundle: true, format: "esm", platform: "browser", target: "es2022", minify: true,
      outfile: join(dir, "_esm.js"), logLevel: "warning",
      // wasm-bindgen's default URL for the .wasm file; Framework passes its own.
      supported: {"import-meta": true}
    });
    for (const file of files) {
      await mkdir(dirname(join(dir, file)), {recursive: true});
      await copyFile(join(here, "node_modules", name, file), join(dir, file));
    }
  }
  for (const name of await unused()) {
    await mkdir(join(cache, "_npm", `${name}@0.0.0-unused`), {recursive: true});
  }
  await writeFile(join(cache, ".stamp"), JSON.stringify(PACKAGES) + "\n");
}

const [cache] = process.argv.slice(2);
if (!cache) {
  console.error("usage: node prefill.mjs CACHE_DIR");
  process.exit(2);
}
await prefill(cache);
