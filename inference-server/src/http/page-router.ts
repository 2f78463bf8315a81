import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Router } from 'express';

/**
 * The page's files: inference-server/page/ of the repository or the image, resolved from the
 * compiled file (dist/inference-server/src/http/) like the bundled model.
 */
const PAGE_DIR = new URL('../../../../inference-server/page/', import.meta.url);
const pageFile = (name: string) => readFileSync(new URL(name, PAGE_DIR), 'utf8');

/**
 * Only this origin's files; images also from blob: (the preview) and data:. No inline script or
 * style, no framing, no <base>, no form posts: the page talks to the API with fetch only.
 */
export const PAGE_CSP = [
  "default-src 'self'",
  "img-src 'self' blob: data:",
  "style-src 'self'",
  "script-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function asset(text: string, type: string): Asset {
  const body = Buffer.from(text, 'utf8');
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/**
 * GET / : a small browser page to try the model (pick, drop or paste an image; see the top 5 and
 * the latency). It uses only the public API. The files are read once, when the router is made;
 * {{MODEL_NAME}} in index.html is replaced, HTML-escaped.
 */
export function pageRouter(modelName: string): Router {
  const html = pageFile('index.html')
    .replaceAll('{{MODEL_NAME_URL}}', escapeHtml(encodeURIComponent(modelName)))
    .replaceAll('{{MODEL_NAME}}', escapeHtml(modelName));
  const assets: [string, Asset][] = [
    ['/', asset(html, 'text/html; charset=utf-8')],
    ['/page.css', asset(pageFile('page.css'), 'text/css; charset=utf-8')],
    ['/page.js', asset(pageFile('page.js'), 'text/javascript; charset=utf-8')],
    ['/favicon.svg', asset(pageFile('favicon.svg'), 'image/svg+xml')],
  ];
  const router = Router();
  for (const [path, file] of assets) {
    router.get(path, (req, res) => {
      res.set({
        'Content-Type': file.type,
        // Revalidate every time (the ETag makes that a 304): a new server version shows at once.
        'Cache-Control': 'no-cache',
        ETag: file.etag,
        'Content-Security-Policy': PAGE_CSP,
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
      });
      if (req.fresh) {
        res.status(304).end();
        return;
      }
      res.send(file.body);
    });
  }
  return router;
}
