// Child-process entry of the load generator: receives one LoadSpec over IPC, reports the measured window's edges, then the result.
import { runLoad, type LoadMessage, type LoadSpec } from './loadgen.js';

const send = (m: LoadMessage, then?: () => void) => process.send!(m, undefined, undefined, then);

process.once('message', (spec: LoadSpec) => {
  runLoad(spec, (event) => send({ type: 'window', event })).then(
    (result) => send({ type: 'result', result }, () => process.exit(0)),
    (e: unknown) => send({ type: 'error', message: e instanceof Error ? e.message : String(e) }, () => process.exit(1)),
  );
});
