// A tiny metrics registry: counters and gauges, rendered in the Prometheus text exposition
// format 0.0.4. Counters are plain integers the code increments (cheap enough for the hot path);
// gauges, and counters kept elsewhere, are read from callbacks at scrape time. It knows nothing
// of HTTP or of what the chat server measures.

export type MetricType = "counter" | "gauge";

/** Constant labels of one series, e.g. `{ version: "0.1.0" }`. */
export type Labels = Readonly<Record<string, string>>;

/** The Content-Type of `Registry.render()`'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
/** Label names starting with `__` are reserved for Prometheus itself. */
const LABEL_NAME = /^(?!__)[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A value that only goes up; `inc()` is one integer increment, fit for a per-frame path. */
export class Counter {
  private count = 0;

  inc(): void {
    this.count++;
  }

  add(amount: number): void {
    if (!(amount >= 0)) throw new RangeError(`A counter only goes up, not by ${amount}`);
    this.count += amount;
  }

  get value(): number {
    return this.count;
  }
}

/** A value that goes up and down, set by the code that knows it. */
export class Gauge {
  private current = 0;

  set(value: number): void {
    this.current = value;
  }

  inc(amount = 1): void {
    this.current += amount;
  }

  dec(amount = 1): void {
    this.current -= amount;
  }

  get value(): number {
    return this.current;
  }
}

interface Series {
  /** The rendered `{name="value",...}`, or "" for none: made once, at registration. */
  labelText: string;
  read: () => number;
}

interface Family {
  type: MetricType;
  help: string;
  series: Series[];
}

/**
 * Metrics by name, in registration order. A name may be registered again with other labels (a
 * new series of the same family), never with another type or help text, nor twice with the
 * same labels.
 */
export class Registry {
  private readonly families = new Map<string, Family>();

  counter(name: string, help: string, labels: Labels = {}): Counter {
    const counter = new Counter();
    this.register("counter", name, help, () => counter.value, labels);
    return counter;
  }

  gauge(name: string, help: string, labels: Labels = {}): Gauge {
    const gauge = new Gauge();
    this.register("gauge", name, help, () => gauge.value, labels);
    return gauge;
  }

  /** A metric read at scrape time, e.g. a queue length or a count another module keeps. */
  computed(type: MetricType, name: string, help: string, read: () => number, labels: Labels = {}): void {
    this.register(type, name, help, read, labels);
  }

  /** Every metric in the text exposition format 0.0.4: HELP, TYPE, then one line per series. */
  render(): string {
    let text = "";
    for (const [name, family] of this.families) {
      text += `# HELP ${name} ${escapeHelp(family.help)}\n# TYPE ${name} ${family.type}\n`;
      for (const series of family.series) text += `${name}${series.labelText} ${formatValue(series.read())}\n`;
    }
    return text;
  }

  private register(type: MetricType, name: string, help: string, read: () => number, labels: Labels): void {
    if (!METRIC_NAME.test(name)) throw new Error(`Invalid metric name ${JSON.stringify(name)}`);
    const labelText = renderLabels(labels);
    let family = this.families.get(name);
    if (!family) {
      family = { type, help, series: [] };
      this.families.set(name, family);
    } else if (family.type !== type || family.help !== help) {
      throw new Error(`Metric ${name} is already registered as a ${family.type} with other help`);
    } else if (family.series.some((series) => series.labelText === labelText)) {
      throw new Error(`Metric ${name}${labelText} is already registered`);
    }
    family.series.push({ labelText, read });
  }
}

/** HELP text: backslash and line feed are escaped (as `\\` and `\n`), nothing else. */
export function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Label values: backslash, double quote and line feed are escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Sample values as Prometheus parses them: Go float syntax, with `+Inf`, `-Inf` and `NaN`. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function renderLabels(labels: Labels): string {
  // Sorted, so the same labels given in another order are the same series.
  const names = Object.keys(labels).sort();
  if (names.length === 0) return "";
  for (const name of names) {
    if (!LABEL_NAME.test(name)) throw new Error(`Invalid label name ${JSON.stringify(name)}`);
  }
  return `{${names.map((name) => `${name}="${escapeLabelValue(labels[name]!)}"`).join(",")}}`;
}
