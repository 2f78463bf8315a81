// The page's icon, served at /favicon.svg (a missing icon would be a 404 in every browser console).
export const FAVICON_SVG = String.raw`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="7" fill="#2457d6"/>
<rect x="7" y="8" width="18" height="4" rx="2" fill="#fff"/>
<rect x="7" y="14" width="12" height="4" rx="2" fill="#fff" opacity=".8"/>
<rect x="7" y="20" width="7" height="4" rx="2" fill="#fff" opacity=".6"/>
</svg>
`;
