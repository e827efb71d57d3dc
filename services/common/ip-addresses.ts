/**
 * What kind of address a fetch would connect to: loopback, unspecified (0.0.0.0, ::,
 * which Linux connects to the local host), link-local, cloud metadata. IPv4 written as
 * IPv6 (::ffff:127.0.0.1, ::ffff:7f00:1, ::127.0.0.1) is judged as the IPv4 it reaches.
 */
import { BlockList, isIP } from "node:net";

function ranges(list: Array<[string, number, "ipv4" | "ipv6"]>): BlockList {
  const blocks = new BlockList();
  for (const [network, prefix, family] of list) blocks.addSubnet(network, prefix, family);
  return blocks;
}

const LOOPBACK = ranges([["127.0.0.0", 8, "ipv4"], ["::1", 128, "ipv6"]]);
const UNSPECIFIED = ranges([["0.0.0.0", 8, "ipv4"], ["::", 128, "ipv6"]]);
const LINK_LOCAL = ranges([["169.254.0.0", 16, "ipv4"], ["fe80::", 10, "ipv6"]]);
/** AWS, GCP and Azure (169.254.169.254), AWS over IPv6, Alibaba Cloud. */
const METADATA = ranges([["169.254.169.254", 32, "ipv4"], ["fd00:ec2::254", 128, "ipv6"], ["100.100.100.200", 32, "ipv4"]]);
/** Names that resolve to a metadata service wherever it exists (refused at publish, before any lookup). */
export const METADATA_HOST_NAMES: readonly string[] = ["metadata.google.internal", "metadata.goog", "metadata.azure.internal"];

/** 16 bytes of an IPv6 address in any notation (zone id dropped), or undefined. */
function ipv6Bytes(text: string): number[] | undefined {
  const address = text.replace(/%.*$/, "");
  if (isIP(address) !== 6) return undefined;
  let head = address;
  let tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (dotted !== null) {
    tail = (dotted[1] as string).split(".").map(Number);
    head = address.slice(0, -(dotted[1] as string).length);
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const [left = "", right] = head.split("::");
  const words = (part: string): number[] => (part === "" ? [] : part.split(":").map((word) => Number.parseInt(word, 16)));
  const leftWords = words(left);
  const rightWords = right === undefined ? [] : words(right);
  const missing = 8 - tail.length / 2 - leftWords.length - rightWords.length;
  const all = [...leftWords, ...Array.from({ length: right === undefined ? 0 : missing }, () => 0), ...rightWords];
  return [...all.flatMap((word) => [word >> 8, word & 0xff]), ...tail];
}

/** The address without brackets or zone, lower-case, IPv4-mapped and IPv4-compatible IPv6 as IPv4. */
export function canonicalAddress(text: string): string {
  const address = text.replace(/^\[|\]$/g, "").toLowerCase();
  if (isIP(address) === 4) return address;
  const bytes = ipv6Bytes(address);
  if (bytes === undefined || bytes.length !== 16) return address;
  const zeros = bytes.slice(0, 10).every((byte) => byte === 0);
  const mapped = zeros && bytes[10] === 0xff && bytes[11] === 0xff;
  const compatible = zeros && bytes[10] === 0 && bytes[11] === 0 && bytes.slice(12).some((byte, index) => byte !== 0 && (index < 3 || byte > 1));
  if (mapped || compatible) return bytes.slice(12).join(".");
  const words = Array.from({ length: 8 }, (_, index) => (((bytes[index * 2] ?? 0) << 8) | (bytes[index * 2 + 1] ?? 0)).toString(16));
  return words.join(":");
}

function inRanges(blocks: BlockList, text: string): boolean {
  const address = canonicalAddress(text);
  const family = isIP(address);
  if (family === 0) return false;
  return blocks.check(address, family === 4 ? "ipv4" : "ipv6");
}

export const isLoopback = (address: string): boolean => inRanges(LOOPBACK, address);
export const isUnspecified = (address: string): boolean => inRanges(UNSPECIFIED, address);
export const isLinkLocal = (address: string): boolean => inRanges(LINK_LOCAL, address);
export const isMetadata = (address: string): boolean => inRanges(METADATA, address);

/** "localhost" and its subdomains are the local host by definition (RFC 6761), whatever DNS says. */
export function isLocalhostName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, "");
  return name === "localhost" || name.endsWith(".localhost");
}

/** Why a fetch of this literal host needs allow-listing (metadata or link-local), or undefined. */
export function internalHostKind(host: string): string | undefined {
  const name = host.replace(/^\[|\]$/g, "").toLowerCase().replace(/\.$/, "");
  if (METADATA_HOST_NAMES.includes(name)) return "a cloud metadata service";
  if (isIP(canonicalAddress(name)) === 0) return undefined;
  if (isMetadata(name)) return "a cloud metadata address";
  if (isLinkLocal(name)) return "a link-local address";
  return undefined;
}
