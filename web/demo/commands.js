// The equivalent command lines of the page's calls, for this page's own origin: curl (the
// Connect protocol, JSON) and buf curl (schema from the gateway's reflection service).

const origin = location.origin;
const h2 = origin.startsWith("https:") ? "" : " --http2-prior-knowledge";

/** Quotes a string for a POSIX shell. */
export function sh(text) {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A unary call with curl: POST the JSON request to /package.Service/Method. */
export function curlUnary(method, request) {
  return `curl -s -X POST -H 'content-type: application/json' \\\n  -d ${sh(JSON.stringify(request))} \\\n  ${origin}/${method}`;
}

/**
 * A streaming call with curl: Connect envelopes (a flag byte and a 4-byte big-endian length
 * before each JSON message), written with printf's octal escapes, so no other tool is needed.
 */
export function curlStream(method, requests, { http2 = false } = {}) {
  const format = requests.map((m) => `${envelopePrefix(JSON.stringify(m))}%s`).join("");
  const args = requests.map((m) => sh(JSON.stringify(m))).join(" \\\n  ");
  return (
    `printf '${format}' \\\n  ${args} |\n` +
    `curl -sN${http2 ? " --http2-prior-knowledge" : ""} --data-binary @- -H 'content-type: application/connect+json' \\\n` +
    `  ${origin}/${method} | tr -c '[:print:]' '\\n' | grep -o '{.*'`
  );
}

/** The same call with buf curl, over the given protocol (grpc, grpcweb or connect). */
export function bufCurl(method, requests, protocol = "grpc") {
  const prior = protocol === "grpc" ? h2 : "";
  if (requests.length === 1) {
    return `buf curl${prior} --protocol ${protocol} \\\n  -d ${sh(JSON.stringify(requests[0]))} \\\n  ${origin}/${method}`;
  }
  const lines = requests.map((m) => JSON.stringify(m)).join("\n");
  return `buf curl${prior} --protocol ${protocol} -d @- \\\n  ${origin}/${method} <<'EOF'\n${lines}\nEOF`;
}

/** Fills `el` with titled command blocks, each with a copy button. */
export function showCommands(el, blocks) {
  el.replaceChildren();
  for (const [title, text] of blocks) {
    const h = document.createElement("h4");
    h.textContent = title;
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "secondary";
    copy.textContent = "copy";
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(text);
        copy.textContent = "copied";
      } catch {
        copy.textContent = "select and copy";
      }
      setTimeout(() => (copy.textContent = "copy"), 1500);
    });
    h.append(copy);
    const pre = document.createElement("pre");
    pre.textContent = text;
    el.append(h, pre);
  }
}

function envelopePrefix(json) {
  const n = new TextEncoder().encode(json).length;
  const bytes = [0, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return bytes.map((b) => `\\${b.toString(8).padStart(3, "0")}`).join("");
}
