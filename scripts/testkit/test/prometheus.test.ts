import { expect } from 'chai';
import { metricSum, parsePrometheus } from '../prometheus.js';

const PAGE = `# HELP http_requests_total HTTP requests
# TYPE http_requests_total counter
http_requests_total{method="POST",route="/predict/image",status="200"} 7
http_requests_total{method="POST",route="/predict/image",status="503"} 2
http_requests_total{method="GET",route="/metrics",status="200"} 1
admission_limit 11

`;

describe('Prometheus text for tests and benchmarks', () => {
  it('reads every series, labels included, skipping comments and blank lines', () => {
    const samples = parsePrometheus(PAGE);
    expect(samples.size).to.equal(4);
    expect(samples.get('admission_limit')).to.equal(11);
    expect(samples.get('http_requests_total{method="POST",route="/predict/image",status="503"}')).to.equal(2);
  });

  it('sums a metric over the label sets that match', () => {
    const samples = parsePrometheus(PAGE);
    expect(metricSum(samples, 'http_requests_total')).to.equal(10);
    expect(metricSum(samples, 'http_requests_total', { method: 'POST' })).to.equal(9);
    expect(metricSum(samples, 'http_requests_total', { method: 'POST', status: '503' })).to.equal(2);
    expect(metricSum(samples, 'admission_limit')).to.equal(11);
    expect(metricSum(samples, 'admission')).to.equal(0);
  });
});
