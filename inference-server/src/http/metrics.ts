import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Latency buckets from 1 ms to 10 s: CPU inference lives in the 5–500 ms range. */
const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Every Prometheus series the server exports, on a registry of its own (tests make many servers). */
export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly requestDuration: Histogram<'method' | 'route'>;
  readonly decodeDuration: Histogram;
  readonly inferenceDuration: Histogram;
  readonly queueDuration: Histogram;
  readonly batchSize: Histogram;
  readonly inFlight: Gauge;
  readonly admissionLimit: Gauge;
  readonly queueDepth: Gauge;
  readonly rejected: Counter<'reason'>;
  readonly modelLoadSeconds: Gauge;
  readonly modelSizeBytes: Gauge;
  readonly modelReady: Gauge;

  constructor(sources: { inFlight: () => number; admissionLimit: () => number; queueDepth: () => number }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({ name: 'http_requests_total', help: 'HTTP requests by route and status code', labelNames: ['method', 'route', 'status'], registers });
    this.requestDuration = new Histogram({ name: 'http_request_duration_seconds', help: 'HTTP request latency, from first byte in to last byte out', labelNames: ['method', 'route'], buckets: SECONDS, registers });
    this.decodeDuration = new Histogram({ name: 'image_decode_duration_seconds', help: 'Image decode + preprocess time (sharp)', buckets: SECONDS, registers });
    this.inferenceDuration = new Histogram({ name: 'inference_duration_seconds', help: 'onnxruntime session.run time per call', buckets: SECONDS, registers });
    this.batchSize = new Histogram({ name: 'inference_batch_size', help: 'Images per session.run (dynamic batching)', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers });
    this.queueDuration = new Histogram({ name: 'inference_queue_duration_seconds', help: 'Time waiting for the session', buckets: SECONDS, registers });
    this.inFlight = new Gauge({ name: 'http_requests_in_flight', help: 'Inference requests admitted and not yet answered', registers, collect() { this.set(sources.inFlight()); } });
    this.admissionLimit = new Gauge({ name: 'admission_limit', help: 'Requests admitted at once now: MAX_IN_FLIGHT, or less under the MAX_QUEUE_MS budget', registers, collect() { this.set(sources.admissionLimit()); } });
    this.queueDepth = new Gauge({ name: 'inference_queue_depth', help: 'Inferences waiting for the session', registers, collect() { this.set(sources.queueDepth()); } });
    this.rejected = new Counter({ name: 'requests_rejected_total', help: 'Requests refused before inference', labelNames: ['reason'], registers });
    this.modelLoadSeconds = new Gauge({ name: 'model_load_duration_seconds', help: 'Time to fetch, load and warm up the model', registers });
    this.modelSizeBytes = new Gauge({ name: 'model_size_bytes', help: 'Size of the ONNX model file', registers });
    this.modelReady = new Gauge({ name: 'model_ready', help: '1 when the model is loaded and warmed up', registers });
  }
}
