import { resolve } from 'node:path';
import { modelsRootFromEnv } from './models-dir.ts';

/**
 * For tests only: the models directory. SYNOD_MODELS_DIR when set, else the offline mirror at
 * `../shared/models` relative to the repository root (this file is in browser-node/src/inference/).
 */
export const TEST_MODELS_DIR = modelsRootFromEnv(resolve(import.meta.dir, '../../../../shared/models'));

export const STORIES_260K_SHA256 = '270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d';
