import { CHAIN_REQUEST_ID_RE, HASH_HEX_RE, sha256 } from '@synod/shared';
import type { Context, Hono } from 'hono';
import type { EdgeConfig } from '../config.ts';
import { parseJson, readBody } from '../http/body.ts';
import { edgeError } from '../http/errors.ts';
import type { AdmissionQueue } from '../relay/dispatcher.ts';
import type { RelayNetwork } from '../relay/network.ts';
import { MAX_SERVING_GROUPS, type ServingGroup, usableGroups } from '../relay/serving-groups.ts';

/** Header carrying the secret shared between a gateway relay and the edge relays that forward to it. */
export const GATEWAY_SECRET_HEADER = 'x-synod-gateway-secret';

/** What `GET /internal/v1/status` answers: enough for a forwarding relay to build its app. */
export interface GatewayStatus {
  coordinatorId: string;
  models: string[];
  embedders: EdgeConfig['embedders'];
  defaultModels: string[];
  health: ReturnType<RelayNetwork['health']>;
  /** The admission queue of this coordinator and its bound; null when unbounded. */
  queue: AdmissionQueue | null;
  /**
   * The nodes heard that could serve this coordinator's requests, grouped by what they serve (at most
   * `MAX_SERVING_GROUPS`), for relays on workerd to refuse a quorum they cannot meet (`QUORUM_UNAVAILABLE`)
   * as this relay does; null while it cannot say (its first seconds, or more groups than that). Absent
   * from a gateway older than it.
   */
  serving?: ServingGroup[] | null;
  /**
   * The identity of the database this gateway dispatches from (`IntakeStore.databaseId`): a relay on
   * workerd over another database refuses requests at once (`GATEWAY_NOT_ON_THIS_DATABASE`), since
   * nothing it admits would be dispatched. Absent from a gateway older than it.
   */
  databaseId?: string | null;
}

/**
 * The groups a gateway publishes: as its requests can use them (its served models, its embedders), and
 * none past `MAX_SERVING_GROUPS` (a relay then refuses nothing on them).
 */
function publishedGroups(
  groups: ServingGroup[] | undefined,
  models: ReadonlySet<string>,
  embedders: ReadonlySet<string>,
): ServingGroup[] | null {
  if (groups === undefined) return null;
  const usable = usableGroups(groups, models, embedders);
  return usable.length > MAX_SERVING_GROUPS ? null : usable;
}

const enc = new TextEncoder();

/** Compare secrets by their digests, so the time taken says nothing about the secret. */
function sameSecret(given: string, expected: string): boolean {
  const a = sha256(enc.encode(given));
  const b = sha256(enc.encode(expected));
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

function checkSecret(c: Context, secret: string): void {
  const given = c.req.header(GATEWAY_SECRET_HEADER);
  if (given === undefined)
    throw edgeError(401, 'UNAUTHENTICATED', `send the gateway secret in ${GATEWAY_SECRET_HEADER}`);
  if (!sameSecret(given, secret)) throw edgeError(403, 'FORBIDDEN', 'wrong gateway secret');
}

/**
 * Routes a gateway relay (Bun, holding a node) offers to edge relays that hold none (workerd): they
 * authenticate callers, validate, meter and admit requests into the shared admission log themselves,
 * naming this relay as coordinator (`GatewayStatus.coordinatorId`).
 * `POST /internal/v1/wake` `{ requestIds }` tells its dispatcher that rows wait (it polls the log too);
 * `GET /internal/v1/status` answers the `GatewayStatus`. Both need the shared secret in
 * `x-synod-gateway-secret`; without a configured secret the routes are not mounted at all.
 */
export function mountInternal(
  app: Hono,
  o: { secret: string; network: RelayNetwork; config: EdgeConfig; databaseId?: string | null },
): void {
  if (o.secret.length < 16) throw new Error('the gateway secret must have at least 16 characters');

  app.post('/internal/v1/wake', async (c) => {
    checkSecret(c, o.secret);
    const raw = parseJson(await readBody(c, o.config.bodyLimit)) as Record<string, unknown> | null;
    const ids = raw !== null && typeof raw === 'object' ? raw['requestIds'] : undefined;
    if (
      !Array.isArray(ids) ||
      ids.length > 1_000 ||
      !ids.every((x) => typeof x === 'string' && (HASH_HEX_RE.test(x) || CHAIN_REQUEST_ID_RE.test(x)))
    ) {
      throw edgeError(400, 'INVALID_INPUT', 'send { requestIds: [up to 1000 request ids] }');
    }
    await o.network.admitted(ids as string[]);
    return c.json({ ok: true });
  });

  app.get('/internal/v1/status', async (c) => {
    checkSecret(c, o.secret);
    const served = await o.network.servedModels();
    const status: GatewayStatus = {
      coordinatorId: o.network.coordinatorId,
      models: [...served].sort(),
      embedders: o.config.embedders,
      defaultModels: [...o.config.defaultModels],
      health: o.network.health(),
      queue: o.network.queue() ?? null,
      serving: publishedGroups(
        o.network.servingGroups?.(),
        served,
        new Set(o.config.embedders.map((e) => e.id)),
      ),
      databaseId: o.databaseId ?? null,
    };
    return c.json(status);
  });
}
