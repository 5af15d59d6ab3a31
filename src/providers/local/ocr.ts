/**
 * `local-ocr`: tesseract.js 7 (Tesseract's LSTM engine compiled to WebAssembly) with the
 * English `4.0.0_best_int` data shipped in `@tesseract.js-data/eng`.
 *
 * Built this way because tesseract.js is only offline when told to be: without an explicit
 * `langPath` it fetches the language data from a CDN, and a failed job with no `errorHandler`
 * throws inside a message handler and takes the whole process down. So: `langPath` is the
 * installed package's folder, `cacheMethod: 'none'` (never read or write a cache in the
 * working directory; `cachePath` points at a private temp dir anyway), an `errorHandler` so
 * failures reject the call instead, and images are always handed over as bytes (a string
 * would be fetched as a URL or read as a file path by the library).
 *
 * The worker costs ~1 s and ~40 MB to start, so it is created on the first call, reused, and
 * jobs run one at a time through it. Aborting a call terminates the worker (the only way to
 * stop a recognition); the next call starts a fresh one. `close()` terminates it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import Tesseract from 'tesseract.js';
import type { CallOptions, ModelRequest, ModelResponse, Provider, ProviderFactory, ProviderSetup } from '../provider.js';
import { begin, describe, isRecord, localError, usage } from './common.js';

const NAME = 'local-ocr';

/** Folder holding eng.traineddata.gz (LSTM-only, integer "best" model). */
function englishDataPath(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@tesseract.js-data/eng/package.json')), '4.0.0_best_int');
}

const MAGIC: [string, number[]][] = [
  ['PNG', [0x89, 0x50, 0x4e, 0x47]],
  ['JPEG', [0xff, 0xd8, 0xff]],
  ['GIF', [0x47, 0x49, 0x46]],
  ['BMP', [0x42, 0x4d]],
  ['TIFF', [0x49, 0x49, 0x2a, 0x00]],
  ['TIFF', [0x4d, 0x4d, 0x00, 0x2a]],
  ['WebP', [0x52, 0x49, 0x46, 0x46]],
];

function isImage(bytes: Buffer): boolean {
  return MAGIC.some(([, m]) => m.every((b, i) => bytes[i] === b)) || (bytes[0] === 0x50 && bytes[1] >= 0x31 && bytes[1] <= 0x36); // + PNM
}

/** The image bytes named by the input: `{ image: base64 | data URL }` or `{ path }`. */
function imageBytes(setup: ProviderSetup, input: unknown): { bytes: Buffer; label: string } {
  const usageHint = 'give { image: "<base64 or data:image/png;base64,...>" } or { path: "scan.png" }';
  if (!isRecord(input)) throw localError(setup, `\`ocr\` input must be an object; ${usageHint}; got ${describe(input)}`);
  let bytes: Buffer;
  let label: string;
  if (typeof input.image === 'string' && input.image !== '') {
    const m = /^data:([^;,]*)(;base64)?,/.exec(input.image);
    if (m && !m[2]) throw localError(setup, 'input.image is a data URL that is not base64-encoded; encode the image as data:image/png;base64,...');
    bytes = Buffer.from(m ? input.image.slice(m[0].length) : input.image, 'base64');
    label = 'input.image';
  } else if (typeof input.path === 'string' && input.path !== '') {
    const abs = isAbsolute(input.path) ? input.path : resolve(setup.baseDir, input.path);
    try {
      bytes = readFileSync(abs);
    } catch (err) {
      throw localError(setup, `cannot read input.path ${input.path} (resolved to ${abs}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; paths are relative to the config file's folder`, err);
    }
    label = `input.path ${input.path}`;
  } else {
    throw localError(setup, `\`ocr\` input has neither a non-empty "image" nor "path"; ${usageHint}`);
  }
  if (!isImage(bytes)) throw localError(setup, `${label} is not a PNG, JPEG, GIF, BMP, TIFF, WebP or PNM image (${bytes.length} bytes); check the encoding/file`);
  return { bytes, label };
}

export const createOcr: ProviderFactory = (setup: ProviderSetup): Provider => {
  const langPath = englishDataPath();
  let worker: Promise<Tesseract.Worker> | undefined;
  let cacheDir: string | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;

  const getWorker = (): Promise<Tesseract.Worker> => {
    if (!worker) {
      cacheDir ??= mkdtempSync(join(tmpdir(), 'baton-ocr-'));
      const starting = Tesseract.createWorker('eng', Tesseract.OEM.LSTM_ONLY, {
        langPath,
        cachePath: cacheDir,
        cacheMethod: 'none',
        gzip: true,
        logger: () => {},
        errorHandler: () => {}, // the failing job's promise rejects; never throw in the message handler
      });
      worker = starting;
      starting.catch(() => {
        if (worker === starting) worker = undefined;
      });
    }
    return worker;
  };

  const stopWorker = async (): Promise<void> => {
    const w = worker;
    worker = undefined;
    if (w) await w.then((x) => x.terminate()).catch(() => {});
  };

  const recognize = async (bytes: Buffer, signal: AbortSignal): Promise<{ text: string; confidence: number }> => {
    signal.throwIfAborted();
    let w: Tesseract.Worker;
    try {
      w = await getWorker();
    } catch (err) {
      throw localError(setup, `the OCR engine did not start (${String((err as Error)?.message ?? err)}); check that tesseract.js and @tesseract.js-data/eng are installed`, err);
    }
    signal.throwIfAborted();
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        void stopWorker();
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const result = await Promise.race([w.recognize(bytes), aborted]);
      const confidence = Math.max(0, Math.min(1, (result.data.confidence ?? 0) / 100));
      return { text: (result.data.text ?? '').trim(), confidence: Math.round(confidence * 1e4) / 1e4 };
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw localError(setup, `OCR failed: ${String((err as Error)?.message ?? err)}; check that the image is readable`, err);
    } finally {
      signal.removeEventListener('abort', onAbort!);
    }
  };

  return {
    name: NAME,
    defaultOperation: 'ocr',
    async call(request: ModelRequest, options: CallOptions): Promise<ModelResponse> {
      begin(setup, NAME, 'ocr', request, options);
      if (closed) throw localError(setup, 'the OCR provider was closed; create a new one');
      const { bytes } = imageBytes(setup, request.input);
      // One job at a time through the one worker.
      const job = queue.then(() => recognize(bytes, options.signal));
      queue = job.catch(() => {});
      const output = await job;
      // Input tokens for an image: the base64 size a vendor would have been sent, in the same rough units.
      return { output, usage: { ...usage('', output), inputTokens: Math.ceil((bytes.length * 4) / 3 / 4) }, model: setup.model };
    },
    async close(): Promise<void> {
      closed = true;
      await queue;
      await stopWorker();
      if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
      cacheDir = undefined;
    },
  };
};
