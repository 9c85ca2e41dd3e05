/**
 * A kernel module's exports from its base64 bytes (the *-wasm.generated.ts files), instantiated on
 * first use, or null where WebAssembly or its SIMD extension is missing: callers then take their
 * JavaScript path.
 */
export function lazyWasmExports<T>(base64: string): () => T | null {
  let exports: T | null | undefined;
  return () => {
    if (exports !== undefined) return exports;
    exports = null;
    try {
      if (typeof WebAssembly === 'object') {
        const bytes = decodeBase64(base64);
        // validate() is false where the engine lacks SIMD: that is the feature test.
        if (WebAssembly.validate(bytes))
          exports = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as unknown as T;
      }
    } catch {
      exports = null;
    }
    return exports;
  };
}

function decodeBase64(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
