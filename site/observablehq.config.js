// Observable Framework configuration of the pond's site (see README.md).
//
// `pond site build` lays out a source root whose pages and data are symlinks into a mounted
// pond and runs `observable build` with PONDFS_SITE_ROOT and PONDFS_SITE_OUTPUT set. The
// sidebar is made by listing that root: one section per directory of pages (sites,
// parameters), each page named by its front-matter title. Everything the site loads is
// bundled or copied into the output: no fonts, CDN or DuckDB extensions are fetched.
import {existsSync, readFileSync, readdirSync, statSync} from "node:fs";
import {join} from "node:path";

const root = process.env.PONDFS_SITE_ROOT ?? "src";

const SECTIONS = [["sites", "Sites"], ["params", "Parameters"]];

function title(file, fallback) {
  const front = /^---\r?\n([\s\S]*?)\r?\n---/.exec(readFileSync(file, "utf8"));
  const line = front && /^title:\s*(.+)$/m.exec(front[1]);
  return line ? line[1].trim().replace(/^(["'])(.*)\1$/, "$2") : fallback;
}

function section(dir, name) {
  const path = join(root, dir);
  if (!existsSync(path) || !statSync(path).isDirectory()) return [];
  const pages = readdirSync(path)
    .filter((file) => file.endsWith(".md") && file !== "index.md")
    .map((file) => ({name: title(join(path, file), file.slice(0, -3)),
                     path: `/${dir}/${file.slice(0, -3)}`}))
    .sort((a, b) => a.name.localeCompare(b.name, "en", {numeric: true}));
  return pages.length ? [{name, open: true, pages}] : [];
}

export default {
  root,
  output: process.env.PONDFS_SITE_OUTPUT ?? "dist",
  title: process.env.PONDFS_SITE_TITLE ?? "Pond",
  pages: SECTIONS.flatMap(([dir, name]) => section(dir, name)),
  pager: false,
  search: false,
  footer: "",
  globalStylesheets: [],
  duckdb: {extensions: {json: null, parquet: null}}
};
