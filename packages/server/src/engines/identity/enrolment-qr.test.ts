import { describe, expect, it } from 'vitest';
import { qrSvg } from './enrolment-qr.js';
import { otpauthUri } from './totp.js';

describe('qrSvg', () => {
  it('draws an otpauth URI as an SVG document', async () => {
    const uri = otpauthUri({ secret: Buffer.alloc(20, 1), account: 'alice@example.com', issuer: 'Palisade' });
    const svg = await qrSvg(uri);
    expect(svg).toContain('<svg');
    expect(svg).toContain('</svg>');
    expect(svg).toContain('viewBox');
    expect(svg).not.toContain(uri); // the secret is drawn, not embedded as text
  });
});
