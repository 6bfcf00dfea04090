import QRCode from 'qrcode';

/**
 * The enrolment QR code (usually an `otpauth://` URI) as an SVG document, drawn on the server so the secret never goes
 * to a third-party QR service. Error correction M (15 %): survives a photographed screen without a dense code.
 */
export function qrSvg(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 4 });
}
