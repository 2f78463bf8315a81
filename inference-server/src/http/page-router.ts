import { createHash } from 'node:crypto';
import { Router } from 'express';
import { FAVICON_SVG } from './page/favicon.svg.js';
import { INDEX_HTML } from './page/index.html.js';
import { PAGE_CSS } from './page/page.css.js';
import { PAGE_JS } from './page/page.js.js';

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
 * the latency). It uses only the public API. The files are built once, here, from TypeScript
 * strings, so they ship in dist/ and the container image with no copy step.
 */
export function pageRouter(modelName: string): Router {
  const html = INDEX_HTML.replaceAll('{{MODEL_NAME_URL}}', escapeHtml(encodeURIComponent(modelName))).replaceAll(
    '{{MODEL_NAME}}',
    escapeHtml(modelName),
  );
  const assets: [string, Asset][] = [
    ['/', asset(html, 'text/html; charset=utf-8')],
    ['/page.css', asset(PAGE_CSS, 'text/css; charset=utf-8')],
    ['/page.js', asset(PAGE_JS, 'text/javascript; charset=utf-8')],
    ['/favicon.svg', asset(FAVICON_SVG, 'image/svg+xml')],
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
