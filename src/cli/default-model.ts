/** `npm run model:default`: regenerates models/default.onnx + default.json from seeded simulator data, byte for byte. */
import { buildDefaultModel, defaultModelPath } from '../offline/train/default-model.js';
import { writeModelFiles } from '../offline/train/write-model.js';

const trained = buildDefaultModel();
const { modelPath, manifestPath } = writeModelFiles(defaultModelPath(), trained.onnx, trained.manifest);
console.log(`wrote ${modelPath} and ${manifestPath} (${trained.manifest.version})`);
