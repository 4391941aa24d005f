// metrics/registry.ts: the Prometheus text exposition format 0.0.4, exactly — HELP and TYPE once
// per metric, one line per series, label sets sorted and escaped, values in Go float syntax.

import { describe, expect, test } from "bun:test";
import { Counter, escapeHelp, escapeLabelValue, formatValue, PROMETHEUS_CONTENT_TYPE, Registry } from "../../src/metrics/registry.ts";

describe("Registry.render", () => {
  test("a golden exposition: metrics in registration order, series of one metric together", () => {
    const registry = new Registry();
    const logins = registry.counter("tlschat_logins_total", "Successful logins");
    const queued = registry.gauge("tlschat_outbound_bytes", "Bytes queued");
    let connections = 3;
    registry.computed("gauge", "tlschat_connections", "Open connections", () => connections);
    registry.computed("gauge", "tlschat_build_info", "Version", () => 1, { version: "0.1.0", commit: "abc" });
    const dbErrors = registry.counter("tlschat_errors_total", "Errors by store", { store: "db" });
    registry.counter("tlschat_errors_total", "Errors by store", { store: "redis" });
    logins.inc();
    logins.inc();
    dbErrors.add(5);
    queued.set(1024);
    queued.dec(24);
    connections = 7;

    expect(registry.render()).toBe(
      [
        "# HELP tlschat_logins_total Successful logins",
        "# TYPE tlschat_logins_total counter",
        "tlschat_logins_total 2",
        "# HELP tlschat_outbound_bytes Bytes queued",
        "# TYPE tlschat_outbound_bytes gauge",
        "tlschat_outbound_bytes 1000",
        "# HELP tlschat_connections Open connections",
        "# TYPE tlschat_connections gauge",
        "tlschat_connections 7",
        "# HELP tlschat_build_info Version",
        "# TYPE tlschat_build_info gauge",
        'tlschat_build_info{commit="abc",version="0.1.0"} 1',
        "# HELP tlschat_errors_total Errors by store",
        "# TYPE tlschat_errors_total counter",
        'tlschat_errors_total{store="db"} 5',
        'tlschat_errors_total{store="redis"} 0',
        "",
      ].join("\n"),
    );
  });

  test("an empty registry renders nothing; every non-empty exposition ends in a line feed", () => {
    const registry = new Registry();
    expect(registry.render()).toBe("");
    registry.counter("a_total", "A");
    expect(registry.render().endsWith("a_total 0\n")).toBe(true);
  });

  test("computed metrics are read at every render, not at registration", () => {
    const registry = new Registry();
    let reads = 0;
    registry.computed("counter", "reads_total", "Reads", () => ++reads);
    expect(reads).toBe(0);
    expect(registry.render()).toContain("reads_total 1\n");
    expect(registry.render()).toContain("reads_total 2\n");
  });

  test("the content type is the 0.0.4 text format's", () => {
    expect(PROMETHEUS_CONTENT_TYPE).toBe("text/plain; version=0.0.4; charset=utf-8");
  });
});

describe("escaping", () => {
  test("HELP escapes backslash and line feed only", () => {
    expect(escapeHelp('C:\\path\nnext "quoted"\ttab')).toBe('C:\\\\path\\nnext "quoted"\ttab');
  });

  test("label values escape backslash, double quote and line feed", () => {
    expect(escapeLabelValue('a\\b"c"\nd\té')).toBe('a\\\\b\\"c\\"\\nd\té');
  });

  test("escaped HELP and label values in a rendered exposition", () => {
    const registry = new Registry();
    registry.computed("gauge", "odd", "Line one\nback\\slash", () => 1, { path: 'C:\\tmp\\"x"\n' });
    expect(registry.render()).toBe('# HELP odd Line one\\nback\\\\slash\n# TYPE odd gauge\nodd{path="C:\\\\tmp\\\\\\"x\\"\\n"} 1\n');
  });

  test("values: integers as integers, fractions, exponents, +Inf, -Inf and NaN", () => {
    expect([0, -0, 42, -3, 0.25, 1e21, 2 ** 53, Infinity, -Infinity, NaN].map(formatValue)).toEqual([
      "0",
      "0",
      "42",
      "-3",
      "0.25",
      "1e+21",
      "9007199254740992",
      "+Inf",
      "-Inf",
      "NaN",
    ]);
  });
});

describe("registration rules", () => {
  test("metric and label names must be valid, and __ label names are reserved", () => {
    const registry = new Registry();
    for (const name of ["", "1abc", "has-dash", "has space", "é"]) expect(() => registry.counter(name, "x")).toThrow("Invalid metric name");
    expect(() => registry.counter("ok:name_total", "x")).not.toThrow();
    for (const label of ["__reserved", "1a", "a-b", "a:b"]) expect(() => registry.counter("c_total", "x", { [label]: "v" })).toThrow("Invalid label name");
  });

  test("the same series twice, or one name with another type or help, is refused", () => {
    const registry = new Registry();
    registry.counter("x_total", "X", { a: "1" });
    expect(() => registry.counter("x_total", "X", { a: "1" })).toThrow("already registered");
    expect(() => registry.computed("gauge", "x_total", "X", () => 0)).toThrow("already registered as a counter");
    expect(() => registry.counter("x_total", "Other help")).toThrow("already registered as a counter");
    expect(() => registry.counter("x_total", "X", { a: "2" })).not.toThrow();
  });

  test("labels given in another order are the same series", () => {
    const registry = new Registry();
    registry.counter("y_total", "Y", { a: "1", b: "2" });
    expect(() => registry.counter("y_total", "Y", { b: "2", a: "1" })).toThrow("already registered");
  });

  test("a counter only goes up", () => {
    const counter = new Counter();
    counter.inc();
    counter.add(2.5);
    expect(counter.value).toBe(3.5);
    for (const bad of [-1, NaN]) expect(() => counter.add(bad)).toThrow("only goes up");
    expect(counter.value).toBe(3.5);
  });
});
