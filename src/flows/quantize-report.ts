import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { modelFromProto, sourceProto } from '../graph/from-onnx.js';
import { decodeModel, TensorProto_DataLocation } from '../io/onnx/proto.js';
import { foldBatchNorm } from '../passes/fold-batchnorm.js';
import { SCHEME_NAMES, type SchemeName, type WeightOnlyReport } from '../passes/weight-only/index.js';
import { combinedSqnrDb, isWeightLayer } from './demo.js';
import { histogram, readersByTensor, weightGrids, type LayerWeights, type ReportData } from './report-data.js';
import { weightOnlySeries } from './report-series.js';

/**
 * Report data for one `quantkit quantize` run: sizes, weight SQNR per layer, and each quantized
 * weight's histogram with the grids. No evaluation set is given to quantize, so quality is NaN
 * (the report leaves those columns out). Weights are read after BatchNormalization folding, as
 * quantizeModel sees them. External-data models are not read here (their weights are skipped).
 */
export function quantizeReportData(
  inPath: string,
  outPath: string,
  report: WeightOnlyReport,
  inputFileBytes: number,
  outputFileBytes: number,
  bins = 80,
): ReportData {
  const model = modelFromProto(decodeModel(readFileSync(inPath), inPath), { label: inPath });
  foldBatchNorm(model);
  const quantized = new Set(report.layers.filter((l) => l.sqnrDb !== null && isWeightLayer(l)).map((l) => l.weight));
  const layers: LayerWeights[] = [];
  const energy = new Map<string, number>();
  const readers = readersByTensor(model.graph.nodes);
  for (const init of model.graph.initializers.values()) {
    if (
      !quantized.has(init.name) ||
      init.dtype !== 'float32' ||
      sourceProto(init)?.dataLocation === TensorProto_DataLocation.EXTERNAL
    )
      continue;
    const w = init.load().data as Float32Array;
    let e = 0;
    for (let i = 0; i < w.length; i++) e += (w[i] as number) * (w[i] as number);
    energy.set(init.name, e);
    layers.push({
      name: init.name,
      readers: readers.get(init.name) ?? [],
      dims: init.dims,
      histogram: histogram(w, bins),
      grids: weightGrids(w),
    });
  }
  const layerSqnrDb: Record<string, number | null> = {};
  for (const l of report.layers) if (l.sqnrDb !== null && quantized.has(l.weight)) layerSqnrDb[l.weight] = l.sqnrDb;
  const label = report.blockSize === null ? report.scheme : `${report.scheme} b${report.blockSize}`;
  return {
    title: `quantkit quantize: ${basename(inPath)} → ${basename(outPath)} (${label})`,
    subtitle:
      `${report.totals.quantizedLayers} weight tensors quantized, ${report.totals.skippedLayers} kept in fp32. ${report.notes.join(' ')}`.trim(),
    models: [
      {
        name: basename(inPath),
        description:
          'Sizes are the .onnx files; no evaluation data was given, so quality is not measured (quantkit demo measures it on the shipped models).',
        quality: { name: 'quality', higherIsBetter: true, percent: false },
        rows: [
          {
            scheme: 'fp32',
            bytes: inputFileBytes,
            ratio: 1,
            quality: NaN,
            qualityChange: NaN,
            weightSqnrDb: null,
            layerSqnrDb: {},
            latencyRatio: null,
          },
          {
            scheme: label,
            ...(isSchemeName(report.scheme)
              ? { series: weightOnlySeries(report.scheme, { blockSize: report.blockSize }) }
              : {}),
            bytes: outputFileBytes,
            ratio: inputFileBytes / outputFileBytes,
            quality: NaN,
            qualityChange: NaN,
            weightSqnrDb: combinedSqnrDb(
              report.layers.map((l) => ({
                signal: energy.get(l.weight) ?? 0,
                sqnrDb: energy.has(l.weight) ? l.sqnrDb : null,
              })),
            ),
            layerSqnrDb,
            latencyRatio: null,
          },
        ],
        layers,
        calibration: [],
      },
    ],
  };
}

function isSchemeName(s: string): s is SchemeName {
  return (SCHEME_NAMES as readonly string[]).includes(s);
}
