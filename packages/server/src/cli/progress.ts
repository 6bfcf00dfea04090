/** A one-line progress bar on stderr (plain lines when stderr is not a terminal). */
export function progressBar(label: string): (done: number, total: number) => void {
  let lastPct = -1;
  return (done, total) => {
    const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
    if (pct === lastPct) return;
    lastPct = pct;
    if (process.stderr.isTTY) {
      const width = 30;
      const filled = Math.round((pct / 100) * width);
      process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% (${done}/${total})`);
      if (done >= total) process.stderr.write('\n');
    } else if (pct % 10 === 0 || done >= total) {
      process.stderr.write(`${label}: ${done}/${total} (${pct}%)\n`);
    }
  };
}
