// Every test file, in one process: the kavach binary is built once (the
// harness caches it per process) and the sidecars run one after another.
// `npm test` runs this; `node --test dist/test/<name>.test.js` runs one file.
import './package.test.js';
import './errors.test.js';
import './agents.test.js';
import './authorize.test.js';
import './delegation.test.js';
import './audit.test.js';
import './approvals.test.js';
import './anomalies.test.js';
import './keys.test.js';
import './quickstart.test.js';
