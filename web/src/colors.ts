// One colour per network: its name's colour word when it has one ("blue-net"), else from a palette.

const NAMED: Record<string, string> = {
  blue: "#2563eb",
  orange: "#ea580c",
  green: "#16a34a",
  red: "#dc2626",
  purple: "#9333ea",
  pink: "#db2777",
  teal: "#0d9488",
  cyan: "#0891b2",
  yellow: "#ca8a04",
  brown: "#92400e",
  gray: "#4b5563",
  grey: "#4b5563",
};
const PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#db2777", "#0891b2", "#ca8a04", "#92400e"];
const EXTERNAL = "#4b5563";

export function networkColors(networks: { id: string; name: string; external: boolean }[]): Map<string, string> {
  const result = new Map<string, string>();
  const used = new Set<string>();
  for (const network of networks) {
    const word = Object.keys(NAMED).find((w) => network.name.toLowerCase().includes(w));
    if (network.external) result.set(network.id, EXTERNAL);
    else if (word && !used.has(NAMED[word])) result.set(network.id, NAMED[word]);
    else continue;
    used.add(result.get(network.id)!);
  }
  let next = 0;
  for (const network of networks) {
    if (result.has(network.id)) continue;
    const free = PALETTE.filter((c) => !used.has(c));
    const colour = free.length ? free[0] : PALETTE[next++ % PALETTE.length];
    result.set(network.id, colour);
    used.add(colour);
  }
  return result;
}
