/** Entry module of the signer's compute thread (compute/thread.ts starts it): the product's sessions. */
import { serveCompute } from './serve.js';
import { createSession } from './specs.js';

serveCompute(createSession);
