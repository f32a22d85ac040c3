import type { EdgeConfig } from '../config.ts';
import { relayDefaults } from '../inference-input.ts';
import type { Metrics } from '../metrics.ts';
import type { Admitter, RelayNetwork } from '../relay/network.ts';
import type { HistoryStore } from '../store/history-store.ts';
import type { IntakeStore } from '../store/intake-store.ts';
import { findView } from '../views.ts';
import type { ChainBridgeOptions } from './bridge-config.ts';
import { ChainStore } from './chain-store.ts';
import { ChainWatcher } from './chain-watcher.ts';
import { bridgeClients } from './clients.ts';

/** What a relay (under Bun or on workerd) lends its chain watcher. */
export interface WatcherRelay {
  store: HistoryStore;
  intake: IntakeStore;
  network: Pick<RelayNetwork, 'admitted' | 'servedModels'>;
  config: Pick<EdgeConfig, 'defaultModels' | 'embedders'>;
  admitter: Admitter;
  now: () => number;
  random?: (n: number) => Uint8Array;
  log?: (entry: Record<string, unknown>) => void;
  /** Where the bridge balance is published (`/metrics`). */
  metrics?: Metrics;
}

/**
 * The chain watcher of a relay: its history and admission log, its admission path, its request
 * defaults, and JSON-RPC clients for the configured chain signing with the bridge key.
 */
export function relayChainWatcher(chain: ChainBridgeOptions, relay: WatcherRelay): ChainWatcher {
  const { store, intake, network } = relay;
  return new ChainWatcher({
    ...bridgeClients(chain.rpcUrl, chain.chainId, chain.bridgeKey),
    oracle: chain.oracle,
    chainId: chain.chainId,
    store: new ChainStore(store.db),
    lookup: (id) => findView(store, intake, id),
    admit: (a) => relay.admitter.admit(a),
    admitted: (ids) => network.admitted(ids),
    defaults: () => relayDefaults(network, relay.config),
    ...(chain.confirmations !== undefined ? { confirmations: chain.confirmations } : {}),
    ...(chain.fromBlock !== undefined ? { fromBlock: chain.fromBlock } : {}),
    ...(chain.pollMs !== undefined ? { pollMs: chain.pollMs } : {}),
    ...(chain.replaceAfterMs !== undefined ? { replaceAfterMs: chain.replaceAfterMs } : {}),
    ...(chain.minBridgeBalance !== undefined ? { minBridgeBalance: chain.minBridgeBalance } : {}),
    ...(chain.maxSettlementGas !== undefined ? { maxSettlementGas: chain.maxSettlementGas } : {}),
    ...(chain.dailyQuota !== undefined ? { quotaPerDay: chain.dailyQuota } : {}),
    ...(chain.maxEventsPerPass !== undefined ? { maxEventsPerPass: chain.maxEventsPerPass } : {}),
    onBalance: (b) => {
      // Gauges are floats: wei above 2^53 lose their last digits here, not in the watcher.
      const labels = { bridge: b.address.toLowerCase() };
      relay.metrics?.set(
        'synod_chain_bridge_balance_wei',
        'Balance of the chain bridge account',
        Number(b.wei),
        labels,
      );
      relay.metrics?.set(
        'synod_chain_bridge_minimum_wei',
        'Balance below which the chain bridge account is reported low',
        Number(b.minimumWei),
        labels,
      );
    },
    onPass: (stats) => {
      const m = relay.metrics;
      if (!m) return;
      const labels = { oracle: `${chain.chainId}:${chain.oracle.toLowerCase()}` };
      m.setTotal('synod_chain_watcher_passes_total', 'Passes of the chain watcher', stats.passes, labels);
      m.setTotal(
        'synod_chain_watcher_errors_total',
        'Chain watcher failures: passes that failed (RPC down, another chain behind the RPC URL), rows that could not be settled or checked, an unfunded bridge',
        stats.errors,
        labels,
      );
      m.setTotal(
        'synod_chain_settlements_replaced_total',
        'Chain settlements re-sent with higher fees',
        stats.replaced,
        labels,
      );
      if (stats.lastOkAt !== null) {
        m.set(
          'synod_chain_watcher_last_ok_seconds',
          'When a chain watcher pass last completed without any failure (Unix seconds)',
          Math.floor(stats.lastOkAt / 1000),
          labels,
        );
      }
      m.set(
        'synod_chain_bridge_mismatch',
        "1 while the oracle's bridge() is another account than the relay's bridge key (its owner changed it): nothing but refunds past their deadline is settled",
        stats.bridgeMismatch === null ? 0 : 1,
        labels,
      );
      if (stats.head !== null) {
        m.set('synod_chain_head_block', "The chain's head block at the last pass", stats.head, labels);
      }
      if (stats.cursor !== null) {
        m.set(
          'synod_chain_cursor_block',
          'The last block whose oracle events were read (behind the head by the confirmations, or more while catching up)',
          stats.cursor,
          labels,
        );
      }
    },
    now: relay.now,
    ...(relay.random ? { random: relay.random } : {}),
    ...(relay.log ? { log: relay.log } : {}),
  });
}
