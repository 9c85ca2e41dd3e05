export { MinMaxObserver, MovingAverageMinMaxObserver, ChannelAbsMaxObserver, type Range } from './minmax.js';
export {
  Histogram,
  histogramQuantile,
  histogramPercentileRange,
  DEFAULT_HISTOGRAM_BINS,
  type HistogramKind,
} from './histogram.js';
export {
  entropyThreshold,
  entropyRange,
  entropyHistogram,
  windowDivergence,
  type EntropyOptions,
  type EntropyResult,
} from './entropy.js';
export { histogramMseRange, histogramFakeQuantMse } from './mse.js';
export {
  parseCalibMethod,
  methodName,
  needsHistogram,
  TensorCalibrator,
  DEFAULT_PERCENTILE,
  type CalibMethod,
} from './method.js';
