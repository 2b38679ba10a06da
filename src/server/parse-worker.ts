/**
 * berthd's parse worker (see src/varlink/parse-worker.ts): large messages to any of berthd's
 * sockets are parsed and validated here, off the event loop, against every interface berthd serves.
 */
import { serveParseWorker } from '../varlink/parse-worker.js';
import { SERVED_INTERFACES } from './interfaces.js';

serveParseWorker([...SERVED_INTERFACES]);
