/**
 * Styles of the pictures — the fleet page's charts, the flow sheets and the renderer's
 * marks on the instance and plan pages. Part of the one hashed stylesheet (assets.ts CSS).
 * The log box is a reversed flex column so it opens scrolled to its newest line, without script.
 * Marks are never colour alone: each has a sign (+ ~ −) and words in a <title>.
 */
export const PICTURES_CSS = `
.pictures{display:grid;grid-template-columns:repeat(auto-fit,minmax(22rem,1fr));gap:1rem}
.pictures figure{margin:0;min-width:0}
.pictures figcaption,.sheet figcaption{font-size:.9rem;margin-bottom:.35rem}
.chart{max-width:100%;height:auto;font-size:10px;fill:var(--fg)}
.chart text{fill:var(--fg)}.chart text.muted{fill:var(--muted)}
.chart .axis{stroke:var(--border)}
.ph-DRAIN{fill:#8250df;background:#8250df}.ph-DEPLOY{fill:#0a5fc2;background:#0a5fc2}.ph-VERIFY{fill:#1a7f37;background:#1a7f37}
.ph-RESUME{fill:#bf8700;background:#bf8700}.ph-AUDIT{fill:#cf222e;background:#cf222e}.ph-CLEANUP{fill:#57606a;background:#57606a}.ph-none{fill:var(--neutral)}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:.3rem .9rem;margin:.3rem 0 0;padding:0;font-size:.82rem}
.legend li{display:inline-flex;align-items:center;gap:.3rem}
.swatch{display:inline-block;min-width:.85rem;height:.85rem;border-radius:2px;font-size:.75rem;line-height:.85rem;text-align:center;font-weight:700}
.cell rect{fill:var(--neutral-bg);stroke:var(--border)}
.cell-done rect{fill:var(--ok-bg);stroke:var(--ok)}.cell-current rect{fill:var(--info-bg);stroke:var(--info);stroke-width:2}
.cell-failed rect{fill:var(--bad-bg);stroke:var(--bad);stroke-width:2}
.cell text{font-size:11px;fill:var(--fg)}.cell text.sub{font-size:9.5px;fill:var(--muted)}
.strip{display:block;max-width:100%;height:auto;border-radius:3px}
.h-ok{fill:var(--ok)}.h-info{fill:var(--info)}.h-bad{fill:var(--bad)}.h-warn{fill:var(--warn)}.h-neutral,.h-none{fill:var(--neutral-bg)}
.strips{list-style:none;margin:0;padding:0;display:grid;gap:.35rem}
.strips li{display:grid;grid-template-columns:minmax(6rem,10rem) 1fr;gap:.5rem;align-items:center;font-size:.85rem}
.strips a,.inst-link{color:inherit}
.small{font-size:.82rem}
.sheet{margin:0 0 1rem;min-width:0}
.drawing{margin:0}
.flow-svg{max-width:100%;height:auto;max-height:36rem;background:var(--card);border:1px solid var(--border);border-radius:6px}
.flow-svg .wire{fill:none;stroke:#999;stroke-width:2}
.flow-svg .wire-link{stroke-dasharray:5 4}.flow-svg .wire-removed{stroke:var(--bad);stroke-dasharray:4 3}
.flow-svg .node rect{fill:#ecebe6;stroke:#999}
.flow-svg .node text{font:12px system-ui,sans-serif;fill:#333}
.flow-svg .node-disabled{opacity:.5}
.flow-svg .group rect{fill:#f3f3f3;fill-opacity:.6;stroke:#b3b3b3;stroke-dasharray:6 3}
.flow-svg .group text{font:11px system-ui,sans-serif;fill:#777}
.flow-svg .mark-added rect{fill:#dafbe1;stroke:#1a7f37;stroke-width:3}
.flow-svg .mark-changed rect{fill:#fff4c2;stroke:#8a5a00;stroke-width:3}
.flow-svg .mark-removed rect{fill:#ffebe9;stroke:#c4212c;stroke-width:3;stroke-dasharray:5 3}
.flow-svg .mark-sign{font:bold 13px system-ui,sans-serif;text-anchor:end}
.swatch.mark-added{background:#dafbe1;color:#1a7f37;border:2px solid #1a7f37}
.swatch.mark-changed{background:#fff4c2;color:#8a5a00;border:2px solid #8a5a00}
.swatch.mark-removed{background:#ffebe9;color:#c4212c;border:2px dashed #c4212c}
.flow-renderer{height:34rem;position:relative;border:1px solid var(--border);border-radius:6px;overflow:hidden;background:#fff}
.flow-renderer.fr-s{height:18rem}.flow-renderer.fr-m{height:26rem}
.flow-renderer g.tower-added>rect{stroke:#1a7f37!important;stroke-width:4px!important}
.flow-renderer g.tower-changed>rect{stroke:#bf8700!important;stroke-width:4px!important}
.flow-renderer g.tower-removed>rect{stroke:#c4212c!important;stroke-width:4px!important;stroke-dasharray:6 3}
.flow-renderer g.tower-removed{opacity:.6}
.flow-note{margin:.4rem 0 0}
.logs-box{display:flex;flex-direction:column-reverse;max-height:28rem;overflow:auto;background:var(--neutral-bg);border-radius:6px}
.logs{padding:.6rem .75rem;margin:0;white-space:pre-wrap;overflow-wrap:anywhere;font-size:.8rem}
.crumbs{font-size:.9rem;margin:0 0 .4rem}
.crumbs a{color:inherit}
`;
