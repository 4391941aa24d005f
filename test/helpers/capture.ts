// Packet capture for the "Wireshark check": runs `tshark` on the loopback interface for one TCP
// port, proves the capture is live (and later, complete) with throwaway probe connections instead
// of sleeping, and reads the result back as tshark fields, reassembled TCP streams and raw bytes.

import type { Subprocess } from "bun";
import { readFile } from "node:fs/promises";
import { requireTool } from "./tools.ts";

const TSHARK = "tshark";
const CAPTURE_INTERFACE = "lo";
// Only a hung tshark reaches this: listing the link types takes it well under a second.
const PERMISSION_PROBE_TIMEOUT_MS = 10_000;
const PERMISSION_PROBE_ATTEMPTS = 3;

/** Whether capture tests can run here: tshark is installed and may capture on `lo` (see tools.ts). */
export function captureUsable(): boolean {
  return requireTool({ name: TSHARK, debianPackage: "tshark", what: "capture tests", unusable: cannotCapture });
}

// `-L` opens the interface to ask for its link types, so it fails exactly when a capture would
// for want of rights, without starting one. Asked again before giving up: once, with rights, a
// probe failed during a full run (CI requires the capture tests, so that would fail it), and what
// tshark says is kept to tell the two apart.
function cannotCapture(tsharkPath: string): string | undefined {
  let said = "";
  for (let attempt = 1; attempt <= PERMISSION_PROBE_ATTEMPTS; attempt++) {
    const probe = Bun.spawnSync([tsharkPath, "-L", "-i", CAPTURE_INTERFACE], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      timeout: PERMISSION_PROBE_TIMEOUT_MS,
    });
    if (probe.exitCode === 0) return undefined;
    said = probe.stderr.toString().trim().split("\n")[0] ?? "";
  }
  return (
    `no permission to capture on ${CAPTURE_INTERFACE} (tshark -L: ${said || "no output"}): run as root or join the wireshark group ` +
    "(Debian: dpkg-reconfigure wireshark-common, then usermod -aG wireshark $USER)"
  );
}

const START_DEADLINE_MS = 15_000;
// tshark reports packets in batches (a few hundred ms apart at worst): probe again after a while,
// not in a tight loop. Extra probes are harmless empty connections.
const FIRST_PROBE_WAIT_MS = 250;
const MAX_PROBE_WAIT_MS = 1_000;
const STOP_DEADLINE_MS = 10_000;
const READ_DEADLINE_MS = 20_000;
const MAX_DURATION_MS = 120_000;

export interface CaptureOptions {
  port: number;
  /** Where the pcapng file goes (the caller owns and removes it). */
  file: string;
  interface?: string;
  /** tshark is terminated after this long even if nobody stops it (default 2 minutes). */
  maxDurationMs?: number;
}

/**
 * A running tshark writing `tcp port PORT` on `lo` to a file. It prints one line per captured
 * packet (`-P -l`: time, ports, SYN/ACK flags), which is how `sync()` knows a probe was seen.
 */
export class Capture implements AsyncDisposable {
  readonly port: number;
  readonly file: string;
  /** Local ports of the probe connections this capture made (so analyses can tell them apart). */
  readonly probePorts = new Set<number>();
  /** Client port → capture time (ms since the epoch) of the latest SYN from it that tshark reported. */
  private readonly synTimes = new Map<number, number>();
  private packetLines = 0;
  private stderrText = "";
  private readonly changed: Array<() => void> = [];
  private readonly exited: Promise<number>;
  private exitCode: number | undefined;
  private stopped = false;
  private stderrDone: Promise<void> = Promise.resolve();

  private constructor(
    private readonly proc: Subprocess<"ignore", "pipe", "pipe">,
    options: CaptureOptions,
  ) {
    this.port = options.port;
    this.file = options.file;
    this.exited = proc.exited.then((code) => {
      this.exitCode = code;
      this.notify();
      return code;
    });
    void this.pumpStdout();
    void this.pumpStderr();
  }

  /** Starts tshark and returns once a probe connection has been captured. */
  static async start(options: CaptureOptions): Promise<Capture> {
    const proc = Bun.spawn(
      [
        TSHARK,
        "-i", options.interface ?? CAPTURE_INTERFACE,
        "-f", `tcp port ${options.port}`,
        "-w", options.file,
        "-q", // no running packet count
        "-P", "-l", // but do print (and flush) one line per packet while writing the file
        "-T", "fields", "-e", "frame.time_epoch", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack",
      ],
      // A hard bound on the capture's life, whatever happens to the test.
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: options.maxDurationMs ?? MAX_DURATION_MS, killSignal: "SIGTERM" },
    );
    const capture = new Capture(proc, options);
    // If the test process ends without stopping the capture (a crash, a test timeout), tshark
    // must not outlive it: SIGTERM makes it stop its dumpcap child too.
    const onExit = () => proc.kill("SIGTERM");
    process.once("exit", onExit);
    void proc.exited.then(() => process.off("exit", onExit));
    try {
      const deadline = Date.now() + START_DEADLINE_MS;
      await capture.until(() => capture.stderrText.includes("Capturing on"), deadline, "tshark to report \"Capturing on\"");
      // "Capturing on" is printed before packets are reliably delivered: probe until one is seen.
      await capture.sync(deadline);
      return capture;
    } catch (error) {
      await capture.kill();
      throw error;
    }
  }

  get stderr(): string {
    return this.stderrText;
  }

  /** Number of packets tshark has reported so far. */
  get packets(): number {
    return this.packetLines;
  }

  /**
   * Makes throwaway TCP connections to the port until tshark has printed the SYN of one of them.
   * Packets on `lo` reach the capture in order, so everything sent before that probe is in the
   * capture too: call it after the traffic of interest and before `stop()`. A probe is recognised
   * by its client port and a SYN time after the probe began, so an older connection that happened
   * to use the same port cannot be mistaken for it.
   */
  async sync(deadline = Date.now() + START_DEADLINE_MS): Promise<void> {
    const probes: Array<{ port: number; since: number }> = [];
    let wait = FIRST_PROBE_WAIT_MS;
    for (;;) {
      const since = Date.now();
      probes.push({ port: await this.probe(), since });
      const next = Math.min(deadline, Date.now() + wait);
      wait = Math.min(MAX_PROBE_WAIT_MS, wait * 2);
      try {
        await this.until(() => probes.some((probe) => (this.synTimes.get(probe.port) ?? 0) >= probe.since), next, "a probe's SYN");
        return;
      } catch (error) {
        if (Date.now() >= deadline || this.exitCode !== undefined) {
          throw new Error(
            `tshark did not capture any of ${probes.length} probe connection(s) to port ${this.port}: ` +
              `${(error as Error).message}\n${this.stderrText}`,
          );
        }
      }
    }
  }

  /** Stops tshark with SIGINT (it finishes the file) and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.exitCode === undefined) this.proc.kill("SIGINT");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const code = await Promise.race([
      this.exited,
      new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), STOP_DEADLINE_MS))),
    ]).finally(() => clearTimeout(timer));
    if (code === "timeout") {
      this.proc.kill("SIGKILL");
      await this.exited;
      throw new Error(`tshark did not exit within ${STOP_DEADLINE_MS} ms of SIGINT\n${this.stderrText}`);
    }
    await this.stderrDone;
    if (code !== 0) throw new Error(`tshark exited with ${code}\n${this.stderrText}`);
    const dropped = [...this.stderrText.matchAll(/(\d+) packets? dropped/g)].map((match) => Number(match[1]));
    if (dropped.some((count) => count > 0)) throw new Error(`tshark dropped packets\n${this.stderrText}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }

  /** Ends tshark whatever its state (for `finally`); never throws. */
  async kill(): Promise<void> {
    this.stopped = true;
    if (this.exitCode !== undefined) return;
    this.proc.kill("SIGINT");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), STOP_DEADLINE_MS))),
    ]).finally(() => clearTimeout(timer));
    if (!done) {
      this.proc.kill("SIGKILL");
      await this.exited;
    }
  }

  private async probe(): Promise<number> {
    let opened!: (port: number) => void;
    let failed!: (error: Error) => void;
    const result = new Promise<number>((resolve, reject) => ((opened = resolve), (failed = reject)));
    await Bun.connect({
      hostname: "127.0.0.1",
      port: this.port,
      socket: {
        open(socket) {
          opened(socket.localPort);
          socket.end();
        },
        data() {},
        connectError(_socket, error) {
          failed(error);
        },
        error(_socket, error) {
          failed(error);
        },
      },
    }).catch((error: Error) => failed(error));
    const port = await result;
    this.probePorts.add(port);
    return port;
  }

  private async until(condition: () => boolean, deadline: number, what: string): Promise<void> {
    while (!condition()) {
      if (this.exitCode !== undefined) {
        await this.stderrDone;
        throw new Error(`tshark exited (${this.exitCode}) while waiting for ${what}\n${this.stderrText}`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.changed.push(resolve);
        timer = setTimeout(resolve, remaining);
      });
      clearTimeout(timer);
    }
  }

  private notify(): void {
    for (const resolve of this.changed.splice(0)) resolve();
  }

  private async pumpStdout(): Promise<void> {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of this.proc.stdout) {
      partial += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, newline);
        partial = partial.slice(newline + 1);
        this.packetLines++;
        const [time, srcPort, dstPort, syn, ack] = line.split("\t");
        if (Number(dstPort) === this.port && isSet(syn) && !isSet(ack)) {
          this.synTimes.set(Number(srcPort), Math.max(this.synTimes.get(Number(srcPort)) ?? 0, Number(time) * 1000));
        }
      }
      this.notify();
    }
  }

  private async pumpStderr(): Promise<void> {
    let finish!: () => void;
    this.stderrDone = new Promise<void>((resolve) => (finish = resolve));
    const decoder = new TextDecoder();
    for await (const chunk of this.proc.stderr) {
      this.stderrText += decoder.decode(chunk, { stream: true });
      this.notify();
    }
    finish();
  }
}

/** A tshark boolean field as printed by -T fields ("1"/"True" when set, depending on the version). */
function isSet(value: string | undefined): boolean {
  return value === "1" || value === "True" || value === "true";
}

/** Runs `tshark -r FILE ...` to completion (bounded) and returns stdout; stderr only in errors. */
export async function tsharkRead(file: string, args: string[]): Promise<string> {
  const proc = Bun.spawn([TSHARK, "-r", file, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), READ_DEADLINE_MS);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    if (code !== 0) throw new Error(`tshark -r ${file} ${args.join(" ")} exited with ${code}:\n${stderr}`);
    return stdout;
  } finally {
    clearTimeout(timer);
    proc.kill("SIGKILL");
  }
}

/**
 * One row per packet matching `filter`, with the given fields; repeated occurrences of a field in
 * one packet (several TLS records) are joined with ",". `decodeAsTls` makes tshark dissect the
 * port as TLS whatever it would guess.
 */
export async function readFields(
  file: string,
  options: { fields: string[]; filter?: string; decodeAsTls?: number },
): Promise<string[][]> {
  const args: string[] = [];
  if (options.decodeAsTls !== undefined) args.push("-d", `tcp.port==${options.decodeAsTls},tls`);
  if (options.filter !== undefined) args.push("-Y", options.filter);
  args.push("-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,");
  for (const field of options.fields) args.push("-e", field);
  const out = await tsharkRead(file, args);
  return out
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => line.split("\t"));
}

/** Number of packets matching a display filter. */
export async function countPackets(file: string, filter: string, decodeAsTls?: number): Promise<number> {
  return (await readFields(file, { fields: ["frame.number"], filter, decodeAsTls })).length;
}

/** All values of a field over the matching packets (comma-joined occurrences split apart). */
export async function fieldValues(file: string, field: string, filter?: string, decodeAsTls?: number): Promise<string[]> {
  const rows = await readFields(file, { fields: [field], filter, decodeAsTls });
  return rows.flatMap((row) => (row[0] ?? "").split(",")).filter((value) => value.length > 0);
}

/** One direction of one TCP connection, as the bytes the sender wrote, in order. */
export interface TcpFlow {
  stream: number;
  srcPort: number;
  dstPort: number;
  bytes: Uint8Array;
}

/**
 * Rebuilds every TCP byte stream in the capture from the raw segment payloads (tcp.payload, by
 * relative sequence number), independent of tshark's TLS dissector. Throws if a stream has a gap
 * (a missed segment) or a retransmission whose bytes differ.
 */
export async function tcpFlows(file: string): Promise<TcpFlow[]> {
  const rows = await tsharkRead(file, [
    "-o", "tcp.relative_sequence_numbers:TRUE",
    "-o", "tcp.analyze_sequence_numbers:TRUE",
    "-Y", "tcp.len > 0",
    "-T", "fields", "-E", "separator=/t",
    "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq", "-e", "tcp.len", "-e", "tcp.payload",
  ]);
  const segments = new Map<string, { stream: number; srcPort: number; dstPort: number; parts: Array<{ offset: number; data: Buffer }> }>();
  for (const line of rows.split("\n")) {
    if (line.length === 0) continue;
    const [stream, src, dst, seq, len, payload] = line.split("\t");
    const data = Buffer.from((payload ?? "").replaceAll(":", ""), "hex");
    if (data.length !== Number(len)) throw new Error(`tcp.payload has ${data.length} bytes, tcp.len says ${len}: ${line.slice(0, 200)}`);
    const key = `${stream}:${src}`;
    let flow = segments.get(key);
    if (!flow) segments.set(key, (flow = { stream: Number(stream), srcPort: Number(src), dstPort: Number(dst), parts: [] }));
    // Relative sequence numbers start at 1 for the first byte after the SYN.
    flow.parts.push({ offset: Number(seq) - 1, data });
  }
  const flows: TcpFlow[] = [];
  for (const flow of segments.values()) {
    flow.parts.sort((a, b) => a.offset - b.offset);
    const chunks: Buffer[] = [];
    let end = 0;
    for (const part of flow.parts) {
      if (part.offset > end) {
        throw new Error(`stream ${flow.stream} from port ${flow.srcPort}: bytes ${end}..${part.offset} missing from the capture`);
      }
      const overlap = end - part.offset;
      if (overlap > 0) {
        const already = Buffer.concat(chunks).subarray(part.offset, Math.min(end, part.offset + part.data.length));
        if (!already.equals(part.data.subarray(0, already.length))) {
          throw new Error(`stream ${flow.stream} from port ${flow.srcPort}: retransmitted bytes at ${part.offset} differ`);
        }
      }
      if (part.offset + part.data.length > end) {
        chunks.push(part.data.subarray(Math.max(0, overlap)));
        end = part.offset + part.data.length;
      }
    }
    if (flow.parts.length > 0 && flow.parts[0]!.offset !== 0) {
      throw new Error(`stream ${flow.stream} from port ${flow.srcPort}: the capture misses the start of the stream`);
    }
    flows.push({ stream: flow.stream, srcPort: flow.srcPort, dstPort: flow.dstPort, bytes: new Uint8Array(Buffer.concat(chunks)) });
  }
  return flows.sort((a, b) => a.stream - b.stream || a.srcPort - b.srcPort);
}

export interface TlsRecordHeader {
  contentType: number;
  version: number;
  length: number;
}

/**
 * Splits a byte stream into TLS records (5-byte header: type, version, length) and throws unless
 * every byte belongs to one: a known content type, a 0x03xx version, a length within the limit,
 * and the stream ending exactly at a record boundary.
 */
export function tlsRecords(bytes: Uint8Array): TlsRecordHeader[] {
  const records: TlsRecordHeader[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 5) throw new Error(`${bytes.length - at} trailing bytes at ${at} are not a TLS record header`);
    const contentType = bytes[at]!;
    const version = (bytes[at + 1]! << 8) | bytes[at + 2]!;
    const length = (bytes[at + 3]! << 8) | bytes[at + 4]!;
    if (![20, 21, 22, 23].includes(contentType)) {
      throw new Error(`byte ${at}: content type ${contentType} is not TLS (${preview(bytes, at)})`);
    }
    if (version >> 8 !== 0x03 || (version & 0xff) > 0x04) throw new Error(`byte ${at}: record version 0x${version.toString(16)} is not TLS`);
    // TLSCiphertext may be up to 2^14 + 256 bytes.
    if (length === 0 || length > 16_384 + 256) throw new Error(`byte ${at}: record length ${length} is out of range`);
    if (at + 5 + length > bytes.length) throw new Error(`byte ${at}: record of ${length} bytes runs past the end of the stream`);
    records.push({ contentType, version, length });
    at += 5 + length;
  }
  return records;
}

function preview(bytes: Uint8Array, at: number): string {
  return JSON.stringify(Buffer.from(bytes.subarray(at, at + 24)).toString("latin1"));
}

/** A string to look for as UTF-8 bytes, or labelled raw bytes (e.g. a certificate's DER). */
export type Needle = string | { label: string; bytes: Uint8Array };

/** Which of `needles` occur anywhere in `haystack` (strings as their UTF-8 bytes); labels for byte needles. */
export function findStrings(haystack: Uint8Array, needles: Needle[]): string[] {
  const buffer = Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength);
  return needles
    .filter((needle) => buffer.indexOf(typeof needle === "string" ? Buffer.from(needle, "utf8") : needle.bytes) >= 0)
    .map((needle) => (typeof needle === "string" ? needle : needle.label));
}

/** The raw bytes of the capture file. */
export async function captureBytes(file: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(file));
}

/** Where a direction's record types break the TLS shape: hello(s) in clear, then only encrypted records. */
export function recordSequenceProblem(types: number[], tls13: boolean): string | undefined {
  if (types.length === 0) return "no TLS records";
  if (types[0] !== 22) return `starts with record type ${types[0]}, not a handshake`;
  const firstAppData = types.indexOf(23);
  if (firstAppData < 0) return "no application data record";
  const beforeData = types.slice(0, firstAppData);
  if (beforeData.some((type) => type !== 22 && type !== 20)) return `unexpected record type before application data: ${types.join(",")}`;
  if (beforeData.filter((type) => type === 20).length > 1) return `more than one change_cipher_spec: ${types.join(",")}`;
  if (tls13) {
    // TLS 1.3: only ClientHello/ServerHello are plaintext; everything else is an application_data record.
    const ccs = beforeData.indexOf(20);
    if (ccs >= 0 && beforeData.slice(ccs).includes(22)) return `handshake record after change_cipher_spec in TLS 1.3: ${types.join(",")}`;
    if (types.includes(21)) return `a plaintext alert in TLS 1.3: ${types.join(",")}`;
  }
  const afterData = types.slice(firstAppData);
  const firstAlert = afterData.indexOf(21);
  const body = firstAlert < 0 ? afterData : afterData.slice(0, firstAlert);
  const tail = firstAlert < 0 ? [] : afterData.slice(firstAlert);
  if (body.some((type) => type !== 23)) return `non-application-data record after the handshake: ${types.join(",")}`;
  if (tail.some((type) => type !== 21)) return `records after an alert: ${types.join(",")}`;
  return undefined;
}

export interface FlowReport {
  srcPort: number;
  dstPort: number;
  bytes: number;
  /** Content types of the records, in order, when the whole flow parses as TLS records. */
  records?: number[];
  /** Why the flow is not a sequence of TLS records. */
  notTls?: string;
}

export interface ServerHelloReport {
  /** tls.handshake.version (legacy_version: 0x0303 in both TLS 1.2 and 1.3). */
  version: string;
  /** tls.handshake.extensions.supported_version: the selected version in TLS 1.3, absent in 1.2. */
  supportedVersion: string;
  /** tls.handshake.ciphersuite */
  cipherSuite: string;
}

export interface CaptureReport {
  file: string;
  fileBytes: number;
  /** Needles found in the raw bytes of the capture file. */
  found: string[];
  /** Packets with TCP payload that tshark, told the port is TLS, does not decode as TLS. */
  nonTlsPackets: number;
  /** Malformed packets or TLS records tshark ignored as unknown. */
  malformedPackets: number;
  /** Distinct record types (tls.record.content_type ∪ tls.record.opaque_type), sorted. */
  recordTypes: number[];
  /** Distinct handshake message types visible in the clear (tls.handshake.type), sorted. */
  handshakeTypes: number[];
  clientHellos: number;
  serverHellos: ServerHelloReport[];
  /** Per direction ("to-server" / "from-server"): TCP payload bytes vs. bytes in TLS records (+5 per header). */
  accounting: Record<"toServer" | "fromServer", { tcpPayload: number; tlsRecordBytes: number }>;
  /** Every TCP byte stream with payload, parsed independently of tshark's TLS dissector. */
  flows: FlowReport[];
}

/** Everything the capture check asserts on, gathered the same way for good and bad captures. */
export async function inspectCapture(file: string, port: number, needles: Needle[]): Promise<CaptureReport> {
  const bytes = await captureBytes(file);
  const numbers = (values: string[]) => [...new Set(values.map(Number))].sort((a, b) => a - b);
  const [nonTlsPackets, malformedPackets, contentTypes, opaqueTypes, handshakeTypes, clientHellos, helloRows, sizeRows, flows] =
    await Promise.all([
      countPackets(file, "tcp.len > 0 && !tls", port),
      countPackets(file, "_ws.malformed || tls.ignored_unknown_record || tls.malformed.buffer_too_small", port),
      fieldValues(file, "tls.record.content_type", undefined, port),
      fieldValues(file, "tls.record.opaque_type", undefined, port),
      fieldValues(file, "tls.handshake.type", undefined, port),
      countPackets(file, "tls.handshake.type == 1", port),
      readFields(file, {
        filter: "tls.handshake.type == 2",
        decodeAsTls: port,
        fields: ["tls.handshake.version", "tls.handshake.extensions.supported_version", "tls.handshake.ciphersuite"],
      }),
      readFields(file, { filter: "tcp.len > 0", decodeAsTls: port, fields: ["tcp.srcport", "tcp.len", "tls.record.length"] }),
      tcpFlows(file),
    ]);
  const accounting = { toServer: { tcpPayload: 0, tlsRecordBytes: 0 }, fromServer: { tcpPayload: 0, tlsRecordBytes: 0 } };
  for (const [src, len, recordLengths] of sizeRows) {
    const side = Number(src) === port ? accounting.fromServer : accounting.toServer;
    side.tcpPayload += Number(len);
    for (const length of (recordLengths ?? "").split(",").filter((value) => value.length > 0)) side.tlsRecordBytes += 5 + Number(length);
  }
  return {
    file,
    fileBytes: bytes.length,
    found: findStrings(bytes, needles),
    nonTlsPackets,
    malformedPackets,
    recordTypes: numbers([...contentTypes, ...opaqueTypes]),
    handshakeTypes: numbers(handshakeTypes),
    clientHellos,
    serverHellos: helloRows.map(([version, supportedVersion, cipherSuite]) => ({
      version: version ?? "",
      supportedVersion: supportedVersion ?? "",
      cipherSuite: cipherSuite ?? "",
    })),
    accounting,
    flows: flows.map((flow) => {
      const report: FlowReport = { srcPort: flow.srcPort, dstPort: flow.dstPort, bytes: flow.bytes.length };
      try {
        report.records = tlsRecords(flow.bytes).map((record) => record.contentType);
      } catch (error) {
        report.notTls = (error as Error).message;
      }
      return report;
    }),
  };
}
