import { BaseError } from 'viem';

/**
 * A chain RPC URL as a log line or an answer may show it: its scheme and host, nothing else. Providers
 * put the account's API key in the path (`https://mainnet.infura.io/v3/<key>`,
 * `https://eth-mainnet.g.alchemy.com/v2/<key>`), in the query (`?apikey=<key>`) or in the userinfo
 * (`https://user:<key>@host`); a URL that does not parse is shown as `<rpc>`.
 */
export function redactRpcUrl(url: string): string {
  try {
    const u = new URL(url);
    const bare = `${u.protocol}//${u.host}`;
    const more =
      u.username !== '' || u.password !== '' || u.pathname !== '/' || u.search !== '' || u.hash !== '';
    return more ? `${bare}/…` : bare;
  } catch {
    return '<rpc>';
  }
}

/**
 * What a failed chain call says, for a log line or an answer: viem's short message and, when it says
 * more, the node's own words (`details`). Never viem's whole `message`, whose meta lines carry the RPC
 * URL (`URL: https://…/v3/<key>`, with only a userinfo stripped) and the request body. A non-viem error
 * gives its message. `rpcUrl`, when given, is also replaced wherever it still appears (by its
 * `redactRpcUrl` form).
 */
export function chainErrorText(e: unknown, rpcUrl?: string): string {
  let text: string;
  if (e instanceof BaseError) {
    const { shortMessage, details } = e;
    text =
      details && !shortMessage.includes(details)
        ? `${shortMessage.replace(/\.$/, '')}: ${details}`
        : shortMessage;
  } else {
    text = String((e as Error)?.message ?? e);
  }
  if (rpcUrl !== undefined && rpcUrl !== '') text = text.split(rpcUrl).join(redactRpcUrl(rpcUrl));
  return text;
}
