import * as library from '../../browser.js';
import { ALL_SCHEME_NAMES, SCHEME_TABLE, type AnySchemeName, type SchemeOption } from '../../flows/schemes.js';
import type { InspectReport } from '../../flows/inspect.js';
import type { QuantizeReport } from '../api.js';
import type { ModelComparison } from '../measure.js';
import { QuantkitClient, type ModelArg } from './client.js';
import type { QuantizeResult, WorkerQuantizeOptions } from './protocol.js';

/*
 * The page: pick a model, read its inspect summary, choose a scheme, quantize in the worker,
 * compare in ONNX Runtime Web, download. Every button goes through window.quantkit (client.ts),
 * the same API a script driving the page uses.
 */

const client = new QuantkitClient(new URL('./worker.js', import.meta.url));

interface PickedModel {
  readonly model: File;
  readonly external: Record<string, File>;
}

const state: {
  picked: PickedModel | undefined;
  result: QuantizeResult | undefined;
  resultName: string;
} = { picked: undefined, result: undefined, resultName: 'model-quantized.onnx' };

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const GiB = 2 ** 30;

function text(tag: string, content: string, cls?: string): HTMLElement {
  const e = document.createElement(tag);
  e.textContent = content;
  if (cls) e.className = cls;
  return e;
}

function table(caption: string, head: string[], rows: (string | number)[][], numeric: boolean[] = []): HTMLElement {
  const wrap = document.createElement('div');
  wrap.className = 'table-wrap';
  wrap.tabIndex = 0; // wide tables scroll: reachable by keyboard
  wrap.setAttribute('role', 'region');
  wrap.setAttribute('aria-label', caption);
  const t = document.createElement('table');
  t.append(text('caption', caption));
  const thead = t.createTHead().insertRow();
  for (const h of head) {
    const th = text('th', h);
    th.setAttribute('scope', 'col');
    thead.append(th);
  }
  const body = t.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    r.forEach((c, i) => {
      const td = tr.insertCell();
      if (typeof c === 'string' && c.includes('`')) td.append(...Array.from(richText('span', c).childNodes));
      else td.textContent = String(c);
      if (numeric[i]) td.className = 'num';
    });
  }
  wrap.append(t);
  return wrap;
}

/** Library text marks option names in backticks: shown as code. */
function richText(tag: string, content: string): HTMLElement {
  const e = document.createElement(tag);
  content.split('`').forEach((part, i) => {
    if (i % 2 === 1) e.append(text('code', part));
    else e.append(part);
  });
  return e;
}

function bytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function db(x: number | null): string {
  if (x === null) return '–';
  return Number.isFinite(x) ? x.toFixed(1) : 'exact';
}

function showError(where: HTMLElement, e: unknown): void {
  const err = e as { code?: string; message?: string; hint?: string };
  const cancelled = err.code === 'QK_CANCELLED';
  const message = cancelled
    ? 'Cancelled.'
    : `Error${err.code ? ` ${err.code}` : ''}: ${err.message ?? String(e)}${err.hint ? ` (${err.hint})` : ''}`;
  where.replaceChildren(...Array.from(richText('span', message).childNodes));
  where.classList.toggle('error', !cancelled);
}

function status(where: HTMLElement, message: string): void {
  where.textContent = message;
  where.classList.remove('error');
}

// ---- 1. model ----

/** The .onnx among the files, the rest by name as candidate data files. */
function pick(files: readonly File[]): PickedModel | undefined {
  const model = files.find((f) => f.name.toLowerCase().endsWith('.onnx'));
  if (!model) return undefined;
  const external: Record<string, File> = {};
  for (const f of files) if (f !== model) external[f.name] = f;
  return { model, external };
}

function renderInspect(name: string, r: InspectReport): HTMLElement {
  const box = document.createElement('div');
  const dims = (d: (number | string | null)[] | null) => (d ? `[${d.map((x) => x ?? '?').join(', ')}]` : '?');
  box.append(
    text('h3', `Inspect: ${name}`),
    table(
      'Model',
      ['', ''],
      [
        ['IR version', r.irVersion],
        ['producer', r.producer || '–'],
        [
          'opsets',
          Object.entries(r.opsets)
            .map(([d, v]) => `${d} ${v}`)
            .join(', '),
        ],
        ['parameters', `${r.parameters.toLocaleString('en')} (${bytes(r.parameterBytes)})`],
        ['inputs', r.inputs.map((v) => `${v.name} ${v.dtype}${dims(v.dims)}`).join(', ')],
        ['outputs', r.outputs.map((v) => `${v.name} ${v.dtype}${dims(v.dims)}`).join(', ')],
        ['external data', r.externalDataFiles.join(', ') || 'none'],
        [
          'quantizable weights',
          `${r.quantizable.filter((q) => q.quantizable).length} of ${r.quantizable.length} initializers`,
        ],
      ],
    ),
    table(
      'Ops',
      ['op', 'count'],
      Object.entries(r.opCounts).sort((a, b) => b[1] - a[1]),
      [false, true],
    ),
    table(
      'Bytes by type',
      ['type', 'tensors', 'elements', 'bytes'],
      Object.entries(r.byDtype).map(([k, v]) => [k, v.tensors, v.params.toLocaleString('en'), bytes(v.bytes)]),
      [false, true, true, true],
    ),
  );
  return box;
}

async function setModel(files: readonly File[]): Promise<void> {
  const where = $('model-status');
  const picked = pick(files);
  if (!picked) {
    showError(where, { message: 'no .onnx file among the files given', hint: 'pick the model file itself' });
    return;
  }
  state.picked = picked;
  state.result = undefined;
  updateButtons();
  status(where, `Reading ${picked.model.name} (${bytes(picked.model.size)})…`);
  const base = picked.model.name.replace(/\.onnx$/i, '');
  ($('out-name') as HTMLInputElement).value = `${base}-${schemeSelect().value}.onnx`;
  try {
    const { report, external } = await quantkit.inspect(picked);
    const missing = external.filter((loc) => !picked.external[loc] && !picked.external[loc.split('/').pop() ?? loc]);
    status(
      where,
      `${picked.model.name}: ${bytes(picked.model.size)}${external.length ? ` + external data ${external.join(', ')}` : ''}.` +
        (missing.length ? ` Missing: ${missing.join(', ')} — pick it with the model (or pick their folder).` : ''),
    );
    if (missing.length) where.classList.add('error');
    const box = $('inspect');
    box.replaceChildren(renderInspect(picked.model.name, report));
    box.hidden = false;
  } catch (e) {
    state.picked = undefined;
    showError(where, e);
  }
  updateButtons();
}

/** Files of a dropped folder, read through the entries API (recursively). */
async function entryFiles(entry: FileSystemEntry): Promise<File[]> {
  if (entry.isFile) return [await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej))];
  if (!entry.isDirectory) return [];
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  const out: File[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
    if (batch.length === 0) return out;
    for (const e of batch) out.push(...(await entryFiles(e)));
  }
}

// ---- 2. scheme and options ----

function schemeSelect(): HTMLSelectElement {
  return $('scheme') as HTMLSelectElement;
}

/** Options a scheme reads, beyond its family's list: which weight-only schemes take which. */
function reads(scheme: AnySchemeName, option: string): boolean {
  const row = SCHEME_TABLE[scheme];
  if (!(row.options as readonly string[]).includes(option)) return false;
  const blocked = ['q4', 'q4-asym', 'q8-block', 'nf4', 'fp4'].includes(scheme);
  switch (option as SchemeOption) {
    case 'blockSize':
    case 'quantizeEmbeddings':
      return blocked;
    case 'format':
      return scheme === 'q4' || scheme === 'q4-asym';
    case 'doubleQuant':
      return scheme === 'nf4' || scheme === 'fp4';
    case 'rtn':
      return blocked || scheme === 'int8';
    case 'method':
    case 'smoothQuant':
    case 'activationType':
      return scheme === 'int8-static';
    case 'dynamicForm':
    case 'perToken':
      return scheme === 'int8-dynamic';
    default:
      return true;
  }
}

const SCHEME_NOTES: Partial<Record<AnySchemeName, string>> = {
  'int8-static':
    'Needs calibration inputs (.npy): the model runs on them in ONNX Runtime Web to find activation ranges.',
  'int8-dynamic': 'Activation scales are found at run time; no calibration data.',
};
const GPTQ_NOTE =
  'Data-free rounding. GPTQ (calibration data with a 4-bit scheme) runs only in the command line (quantkit quantize with calibration inputs). Here a calibration file only feeds the comparison.';

function updateScheme(): void {
  const scheme = schemeSelect().value as AnySchemeName;
  for (const el of Array.from(document.querySelectorAll<HTMLElement>('[data-for]'))) {
    const on = reads(scheme, el.dataset.for as string);
    el.hidden = !on;
    for (const input of el.matches('input, select')
      ? [el]
      : Array.from(el.querySelectorAll<HTMLElement>('input, select')))
      (input as HTMLInputElement).disabled = !on;
  }
  const blocked = ['q4', 'q4-asym', 'q8-block', 'nf4', 'fp4'].includes(scheme);
  $('scheme-note').textContent = SCHEME_NOTES[scheme] ?? (blocked ? GPTQ_NOTE : '');
  const out = $('out-name') as HTMLInputElement;
  out.value = out.value.replace(/-[a-z0-9-]+\.onnx$/i, `-${scheme}.onnx`);
}

function formOptions(): { options: WorkerQuantizeOptions; name: string } {
  const form = $('options') as HTMLFormElement;
  const f = new FormData(form);
  const scheme = schemeSelect().value as AnySchemeName;
  const on = (name: string) => f.get(name) === 'on';
  const value = (name: string) => {
    const v = f.get(name);
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const calib = ($('calib') as HTMLInputElement).files?.[0];
  const name = value('outName') ?? 'model-quantized.onnx';
  const exclude = (value('exclude') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const r = (opt: string) => reads(scheme, opt);
  const options: WorkerQuantizeOptions = {
    scheme,
    exclude,
    keepFirstLast: on('keepFirstLast'),
    blockSize: r('blockSize') && value('blockSize') ? Number(value('blockSize')) : undefined,
    format: r('format') ? (value('format') as 'native' | 'qdq' | undefined) : undefined,
    rtn: r('rtn') ? on('rtn') : undefined,
    quantizeEmbeddings: r('quantizeEmbeddings') ? on('quantizeEmbeddings') : undefined,
    doubleQuant: r('doubleQuant') ? on('doubleQuant') : undefined,
    dynamicForm: r('dynamicForm') ? (value('dynamicForm') as 'integer' | 'contrib' | undefined) : undefined,
    perToken: r('perToken') ? on('perToken') : undefined,
    target: r('target') ? (value('target') as WorkerQuantizeOptions['target']) : undefined,
    method: r('method') ? value('method') : undefined,
    activationType: r('activationType') ? (value('activationType') as 'uint8' | 'int8' | undefined) : undefined,
    calib: scheme === 'int8-static' ? calib : undefined,
    externalData: on('externalData'),
    dataLocation: `${name.replace(/\.onnx$/i, '')}.onnx_data`,
  };
  return { options, name };
}

// ---- 3. quantize ----

function renderReport(r: QuantizeReport, ms: number, out: QuantizeResult): HTMLElement {
  const box = document.createElement('div');
  const size = out.model.size + (out.data?.size ?? 0);
  box.append(text('h3', `Report: ${r.scheme}`));
  if (r.family === 'weight-only') {
    box.append(
      table(
        'Per-layer report',
        ['weight', 'node', 'op', 'scheme', 'form', 'SQNR dB', 'bytes before', 'bytes after', 'note'],
        r.layers.map((l) => [
          l.weight,
          l.nodes.length > 1 ? `${l.nodes[0] as string} +${l.nodes.length - 1}` : (l.nodes[0] ?? ''),
          l.opTypes.join(','),
          l.scheme,
          l.form,
          db(l.sqnrDb),
          l.bytesBefore,
          l.bytesAfter,
          l.note,
        ]),
        [false, false, false, false, false, true, true, true, false],
      ),
      text(
        'p',
        `Weights ${bytes(r.totals.bytesBefore)} → ${bytes(r.totals.bytesAfter)} (${r.totals.ratio.toFixed(3)}×); ` +
          `${r.totals.quantizedLayers} quantized, ${r.totals.skippedLayers} kept in fp32.`,
      ),
    );
  } else {
    box.append(
      table(
        'Quantized nodes',
        ['node', 'op', 'weight'],
        r.quantizedNodes.map((n) => [n.node, n.opType, n.weight ?? '–']),
      ),
    );
    if (r.skipped.length)
      box.append(
        table(
          'Left in float',
          ['node', 'op', 'reason'],
          r.skipped.map((n) => [n.node, n.opType, n.reason]),
        ),
      );
  }
  box.append(
    text(
      'p',
      `Output ${bytes(size)}${out.data ? ` (.onnx + ${out.dataLocation})` : ''}, quantized in ${(ms / 1000).toFixed(2)} s.`,
    ),
  );
  if (r.notes.length) {
    const ul = document.createElement('ul');
    ul.className = 'notes';
    for (const n of r.notes) ul.append(richText('li', n));
    box.append(ul);
  }
  return box;
}

async function runQuantize(): Promise<void> {
  const picked = state.picked;
  if (!picked) return;
  const where = $('run-status');
  const bar = $('progress') as HTMLProgressElement;
  const label = $('progress-label');
  const { options, name } = formOptions();
  state.result = undefined;
  $('report').hidden = true;
  $('comparison').hidden = true;
  bar.value = 0;
  status(where, `Quantizing with ${options.scheme}…`);
  setBusy(true);
  const t0 = performance.now();
  try {
    const result = await quantkit.quantize(picked, options, (done, total, step) => {
      bar.value = total > 0 ? done / total : 0;
      label.textContent = `Progress: ${step} ${done}/${total}`;
    });
    bar.value = 1;
    state.result = result;
    state.resultName = name;
    quantkit.lastQuantizeMs = performance.now() - t0;
    status(where, `Done: ${name}, ${bytes(result.model.size + (result.data?.size ?? 0))}.`);
    const box = $('report');
    box.replaceChildren(renderReport(result.report, result.ms, result));
    box.hidden = false;
  } catch (e) {
    bar.value = 0;
    showError(where, e);
  } finally {
    label.textContent = 'Progress';
    setBusy(false);
  }
}

// ---- 4. compare ----

function renderComparison(c: ModelComparison): HTMLElement {
  const box = document.createElement('div');
  box.append(
    table(
      `Original vs quantized on ${c.samples} ${c.inputs === 'random' ? 'random' : 'calibration'} samples`,
      ['output', 'SQNR dB', 'cosine', 'top-1 agreement', 'max |error|'],
      c.outputs.map((o) => [
        o.name,
        db(o.sqnrDb),
        o.cosine.toFixed(5),
        o.top1Agreement === null ? '–' : `${(o.top1Agreement * 100).toFixed(1)} %`,
        o.maxAbsError.toPrecision(3),
      ]),
      [false, true, true, true, true],
    ),
    text(
      'p',
      `Latency on one sample, median of 5 runs in ONNX Runtime Web: original ${c.latencyMs.original.toFixed(1)} ms, ` +
        `quantized ${c.latencyMs.quantized.toFixed(1)} ms (${(c.latencyMs.quantized / c.latencyMs.original).toFixed(2)}×).`,
    ),
  );
  return box;
}

async function runCompare(): Promise<void> {
  const picked = state.picked;
  const result = state.result;
  if (!picked || !result) return;
  const where = $('compare-status');
  status(where, 'Running both models in ONNX Runtime Web…');
  setBusy(true);
  try {
    const calib = ($('calib') as HTMLInputElement).files?.[0];
    const quantized: ModelArg = {
      model: result.model,
      name: state.resultName,
      external: result.data && result.dataLocation ? { [result.dataLocation]: result.data } : {},
    };
    const c = await quantkit.compare(picked, quantized, calib);
    status(where, '');
    const box = $('comparison');
    box.replaceChildren(renderComparison(c));
    box.hidden = false;
  } catch (e) {
    showError(where, e);
  } finally {
    setBusy(false);
  }
}

// ---- 5. download ----

function save(blob: Blob, name: string): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

function download(): void {
  const r = state.result;
  if (!r) return;
  save(r.model, state.resultName);
  if (r.data && r.dataLocation) save(r.data, r.dataLocation);
  status(
    $('download-status'),
    r.data ? `Saved ${state.resultName} and ${r.dataLocation}.` : `Saved ${state.resultName}.`,
  );
}

// ---- wiring ----

let busy = false;
function setBusy(b: boolean): void {
  busy = b;
  updateButtons();
}

function updateButtons(): void {
  ($('quantize') as HTMLButtonElement).disabled = busy || !state.picked;
  ($('cancel') as HTMLButtonElement).disabled = !busy;
  ($('compare') as HTMLButtonElement).disabled = busy || !state.result;
  ($('download') as HTMLButtonElement).disabled = busy || !state.result;
}

/** window.quantkit: the worker-backed jobs the buttons use, plus the library itself. */
const quantkit = {
  version: '0.1.0',
  schemes: ALL_SCHEME_NAMES,
  inspect: client.inspect.bind(client),
  quantize: client.quantize.bind(client),
  quantizeModelBytes: client.quantizeModelBytes.bind(client),
  compare: client.compare.bind(client),
  cancel: client.cancel.bind(client),
  /** The library entry (quantkit's "browser" export), on the page's own thread. */
  library,
  /** Wall time of the last quantize started from the page (ms, worker round trip included). */
  lastQuantizeMs: NaN,
};
(window as unknown as { quantkit: typeof quantkit }).quantkit = quantkit;

function init(): void {
  const select = schemeSelect();
  for (const s of ALL_SCHEME_NAMES) {
    const o = document.createElement('option');
    o.value = s;
    o.textContent = s;
    select.append(o);
  }
  select.value = 'q4';
  select.addEventListener('change', updateScheme);
  updateScheme();

  const onFiles = (input: HTMLInputElement) => () => {
    if (input.files?.length) void setModel(Array.from(input.files));
  };
  const files = $('model-files') as HTMLInputElement;
  const folder = $('model-folder') as HTMLInputElement;
  files.addEventListener('change', onFiles(files));
  folder.addEventListener('change', onFiles(folder));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const items = Array.from(e.dataTransfer?.items ?? []);
    const entries = items.map((i) => i.webkitGetAsEntry()).filter((x): x is FileSystemEntry => x !== null);
    void Promise.all(entries.map(entryFiles)).then((lists) => setModel(lists.flat()));
  });

  $('quantize').addEventListener('click', () => void runQuantize());
  $('cancel').addEventListener('click', () => quantkit.cancel());
  $('compare').addEventListener('click', () => void runCompare());
  $('download').addEventListener('click', download);
  updateButtons();
  document.body.dataset.ready = '1';
}

init();
