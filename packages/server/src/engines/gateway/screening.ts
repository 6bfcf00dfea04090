/**
 * The prompt-screening hook: routes that carry prompts or tool results hand those texts to a detector before the
 * upstream sees them; the route's policy blocks or flags on the detector's score. The threat-detection engine
 * supplies the real detector (`Gateway.setDetector`); until one is set, screened routes pass unscreened and the
 * gateway says so once in its log and in `gateway_prompt_screenings_total{verdict="unscreened"}`.
 */
export interface ScreenItem {
  /** Where in the body: `messages[2].content`. */
  path: string;
  kind: 'prompt' | 'tool_result';
  text: string;
}

export interface ScreenVerdict {
  /** 0 (benign) to 1 (certainly an attack). */
  score: number;
  /** What was found (`instruction_override`, `exfiltration`, ...). */
  labels: string[];
}

export interface PromptDetector {
  readonly name: string;
  /** One verdict per item, in order. */
  screen(items: readonly ScreenItem[]): Promise<ScreenVerdict[]>;
}

type Json = unknown;

/**
 * The strings at `path` (`a.b`, `items[*].text`, `messages[0].content`) of a parsed JSON body, with their concrete
 * paths. A value that is not a string is screened as its JSON text, so nothing at a screened path goes unexamined.
 */
export function textsAt(body: Json, path: string): Array<{ path: string; text: string }> {
  const steps = path.split('.').flatMap((part) => {
    const m = /^([^[\]]*)((?:\[(?:\*|\d+)\])*)$/.exec(part);
    if (!m) throw new Error(`screening path ${path}: cannot read "${part}"`);
    const out: Array<string | number | '*'> = [];
    if (m[1]) out.push(m[1]);
    for (const idx of m[2]!.matchAll(/\[(\*|\d+)\]/g)) out.push(idx[1] === '*' ? '*' : Number(idx[1]));
    return out;
  });
  let cur: Array<{ path: string; value: Json }> = [{ path: '', value: body }];
  for (const step of steps) {
    const next: typeof cur = [];
    for (const { path: p, value } of cur) {
      if (step === '*') {
        if (Array.isArray(value)) value.forEach((v, i) => next.push({ path: `${p}[${i}]`, value: v }));
      } else if (typeof step === 'number') {
        if (Array.isArray(value) && step < value.length) next.push({ path: `${p}[${step}]`, value: value[step] });
      } else if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.hasOwn(value, step)) {
        next.push({ path: p ? `${p}.${step}` : step, value: (value as Record<string, Json>)[step] });
      }
    }
    cur = next;
  }
  return cur.filter((c) => c.value !== undefined && c.value !== null).map((c) => ({ path: c.path, text: typeof c.value === 'string' ? c.value : JSON.stringify(c.value) }));
}
