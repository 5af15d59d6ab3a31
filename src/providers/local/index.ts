/**
 * The built-in local models: each runs in-process, offline, with no API key, and does one
 * task. Config names a service's `provider:` as one of these keys.
 */
import type { ProviderFactory } from '../provider.js';
import { createAnomaly } from './anomaly.js';
import { createClassifier } from './classifier.js';
import { createEntities } from './entities.js';
import { createOcr } from './ocr.js';
import { createRetrieval } from './retrieval.js';
import { createSentiment } from './sentiment.js';

export const LOCAL_PROVIDERS: Record<string, ProviderFactory> = {
  'local-classifier': createClassifier,
  'local-sentiment': createSentiment,
  'local-entities': createEntities,
  'local-retrieval': createRetrieval,
  'local-ocr': createOcr,
  'local-anomaly': createAnomaly,
};
