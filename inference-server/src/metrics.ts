import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Latency buckets from 1 ms to 60 s: CPU inference lives in the 5–500 ms range, deep queues in seconds. */
const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** What the gauges read when scraped. */
export interface MetricSources {
  inFlight: () => number;
  queuedImages: () => number;
  runningImages: () => number;
  admissionLimit: () => number;
  memoryReserved: () => number;
  memoryBound: () => number;
  queueBudgetSeconds: () => number;
}

/**
 * Every Prometheus series the server exports, on a registry of its own (tests
 * make many servers). It is the scheduler's observer (waited, ran), so queue
 * and batch figures come from the one place that runs inference; a leaf
 * module, imported by the layers above and importing none of them.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly requestDuration: Histogram<'method' | 'route'>;
  readonly decodeDuration: Histogram;
  readonly inferenceDuration: Histogram;
  readonly queueDuration: Histogram;
  readonly batchSize: Histogram;
  readonly rejected: Counter<'reason'>;
  readonly modelLoadSeconds: Gauge;
  readonly modelSizeBytes: Gauge;
  readonly modelReady: Gauge;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests by route and status code',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency, from first byte in to last byte out',
      labelNames: ['method', 'route'],
      buckets: SECONDS,
      registers,
    });
    this.decodeDuration = new Histogram({
      name: 'image_decode_duration_seconds',
      help: 'Image decode + preprocess time (sharp)',
      buckets: SECONDS,
      registers,
    });
    this.inferenceDuration = new Histogram({
      name: 'inference_duration_seconds',
      help: 'onnxruntime session.run time per call',
      buckets: SECONDS,
      registers,
    });
    this.batchSize = new Histogram({
      name: 'inference_batch_size',
      help: 'Images per session.run (dynamic batching, v2 batches)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.queueDuration = new Histogram({
      name: 'inference_queue_duration_seconds',
      help: 'Time an inference waited in the scheduler queue for a session',
      buckets: SECONDS,
      registers,
    });
    gauge(
      'http_requests_in_flight',
      'Inference requests received and not yet answered (uploading, decoding, queued or running)',
      sources.inFlight,
    );
    gauge('inference_queue_depth', 'Images waiting in the scheduler queue for a session', sources.queuedImages);
    gauge('inference_running_images', 'Images in a session.run now', sources.runningImages);
    gauge(
      'admission_limit',
      'Images that may be queued or running under the opt-in limits (MAX_IN_FLIGHT, MAX_QUEUE_MS); ' +
        '+Inf when none is set',
      sources.admissionLimit,
    );
    gauge(
      'queue_budget_seconds',
      'SLO mode: the queue budget in force (MAX_QUEUE_MS); 0 when off',
      sources.queueBudgetSeconds,
    );
    gauge(
      'memory_reserved_bytes',
      'Bytes held by requests in progress (bodies, decoded images, tensors)',
      sources.memoryReserved,
    );
    gauge(
      'memory_bound_bytes',
      'The most bytes requests may hold at once (MAX_QUEUE_BYTES); past it, 503',
      sources.memoryBound,
    );
    this.rejected = new Counter({
      name: 'requests_rejected_total',
      help: 'Requests refused before inference, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.modelLoadSeconds = new Gauge({
      name: 'model_load_duration_seconds',
      help: 'Time to fetch, load and warm up the model',
      registers,
    });
    this.modelSizeBytes = new Gauge({ name: 'model_size_bytes', help: 'Size of the ONNX model file', registers });
    this.modelReady = new Gauge({ name: 'model_ready', help: '1 when the model is loaded and warmed up', registers });
  }

  waited(seconds: number): void {
    this.queueDuration.observe(seconds);
  }

  ran(images: number, seconds: number): void {
    this.inferenceDuration.observe(seconds);
    this.batchSize.observe(images);
  }
}
