// Child-process entry of the fixed-rate load generator: receives one FixedRateSpec over IPC, reports the measured
// window's edges, then the result.
import { runFixedRate, type FixedRateMessage, type FixedRateSpec } from './fixed-rate.js';

const send = (m: FixedRateMessage, then?: () => void) => process.send!(m, undefined, undefined, then);

process.once('message', (spec: FixedRateSpec) => {
  runFixedRate(spec, (event) => send({ type: 'window', event })).then(
    (result) => send({ type: 'result', result }, () => process.exit(0)),
    (e: unknown) => send({ type: 'error', message: e instanceof Error ? e.message : String(e) }, () => process.exit(1)),
  );
});
