/**
 * libSQL's native code (an embedded replica's syncs, written in Rust) logs on its own: ANSI-coloured
 * lines, not JSON, to standard output, at the level `RUST_LOG` names (errors when unset), one for each
 * sync while its server cannot be reached. The relay says those failures itself (503
 * `STORE_UNAVAILABLE`, `/healthz`'s `primary`), in its JSON lines, so unless the operator set `RUST_LOG`
 * it is set to `off` before libSQL's native module loads, which reads it once as it loads.
 *
 * Set in the C environment (`setenv`), as native code reads it there: Bun's `process.env` is a copy that
 * native code never sees. A CommonJS module, imported first by `main.ts`: Bun evaluates the CommonJS
 * modules an entry imports before the bodies of its ES modules, in import order, so an ES module's body
 * would run after libSQL had loaded. Where the C library cannot be opened (not glibc or macOS), nothing
 * is set and libSQL logs as it would.
 */
// `require`, not `import`: TypeScript would read an import here as an ES module's.
const ffi = require('bun:ffi') as typeof import('bun:ffi');

if (process.env['RUST_LOG'] === undefined) {
  const libc = process.platform === 'darwin' ? 'libSystem.B.dylib' : 'libc.so.6';
  try {
    const lib = ffi.dlopen(libc, {
      setenv: { args: [ffi.FFIType.cstring, ffi.FFIType.cstring, ffi.FFIType.i32], returns: ffi.FFIType.i32 },
    });
    const cstr = (s: string) => ffi.ptr(Buffer.from(`${s}\0`));
    lib.symbols.setenv(cstr('RUST_LOG'), cstr('off'), 0);
    lib.close();
  } catch {
    // No C library to set it in: libSQL logs as it would.
  }
}
