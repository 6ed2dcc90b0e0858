/** Distinguished names as the CLI takes them, in openssl's form: "/O=quorumkey/CN=quorumkey CA". Pure. */
import { AttributeTypeAndValue, AttributeValue, Name, RelativeDistinguishedName } from '@peculiar/asn1-x509';

const ATTRIBUTES: Record<string, string> = { CN: '2.5.4.3', O: '2.5.4.10', OU: '2.5.4.11', C: '2.5.4.6', ST: '2.5.4.8', L: '2.5.4.7' };

export function parseSubject(text: string): Name {
  if (!text.startsWith('/')) throw new Error(`subject '${text.slice(0, 80)}' must look like /O=Example/CN=Example CA`);
  const rdns = text
    .slice(1)
    .split('/')
    .map((part) => {
      const m = /^([A-Za-z]+)=(.+)$/.exec(part);
      const oid = m && ATTRIBUTES[m[1]!.toUpperCase()];
      if (!m || !oid) throw new Error(`subject part '${part.slice(0, 80)}' is not one of ${Object.keys(ATTRIBUTES).join(', ')}=value`);
      if (m[2]!.length > 64) throw new Error(`subject ${m[1]} is longer than 64 characters`);
      const value = oid === ATTRIBUTES.C ? new AttributeValue({ printableString: m[2]! }) : new AttributeValue({ utf8String: m[2]! });
      return new RelativeDistinguishedName([new AttributeTypeAndValue({ type: oid, value })]);
    });
  return new Name(rdns);
}

/** "CN=x, O=y" for listings. */
export function describeName(name: Name): string {
  const short = Object.fromEntries(Object.entries(ATTRIBUTES).map(([k, v]) => [v, k]));
  return name.map((rdn) => rdn.map((atv) => `${short[atv.type] ?? atv.type}=${atv.value.toString()}`).join('+')).join(', ');
}
