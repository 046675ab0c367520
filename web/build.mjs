// Builds the dashboard into dist/: one minified JavaScript bundle and one
// stylesheet, each named by a hash of its content (served as immutable),
// each with a gzip twin, and index.html naming them. The gateway compiles
// dist/ in (services/gateway/CMakeLists.txt).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');

const result = await esbuild.build({
  entryPoints: [join(root, 'src/main.jsx'), join(root, 'src/app.css')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  write: false,
  outdir: 'out',
  logLevel: 'warning',
});

// Files are written only when their bytes change, so that a rebuild with no
// change leaves the gateway's build alone.
mkdirSync(dist, { recursive: true });
const written = new Set();
function put(name, bytes) {
  const path = join(dist, name);
  written.add(name);
  if (existsSync(path) && Buffer.compare(readFileSync(path), Buffer.from(bytes)) === 0) return;
  writeFileSync(path, bytes);
}
const names = {};
for (const file of result.outputFiles) {
  const ext = file.path.endsWith('.css') ? 'css' : 'js';
  const hash = createHash('sha256').update(file.contents).digest('hex').slice(0, 12);
  const name = `app-${hash}.${ext}`;
  names[ext] = name;
  put(name, file.contents);
  put(`${name}.gz`, gzipSync(file.contents, { level: 9 }));
}
const html = readFileSync(join(root, 'index.html'), 'utf8')
  .replace('{{js}}', names.js)
  .replace('{{css}}', names.css);
put('index.html', html);
for (const f of readdirSync(dist)) {
  if (!written.has(f)) rmSync(join(dist, f));
}
for (const f of readdirSync(dist).sort()) {
  console.log(`dist/${f}: ${readFileSync(join(dist, f)).length} bytes`);
}
