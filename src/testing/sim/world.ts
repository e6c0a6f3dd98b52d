/** What clients and the fault scheduler may ask of the simulation. */

import type { NodeId } from "../../raft/types.ts";
import type { SimNode } from "./sim-node.ts";

export interface SimWorld {
  /** Simulated time in microseconds. */
  readonly now: number;
  readonly nodes: ReadonlyMap<NodeId, SimNode>;
  /** Runs `fn` after `delayUs` of simulated time. */
  schedule(delayUs: number, fn: () => void): void;
  /** Call after feeding a node an input (propose, read, transfer...): handles its Ready and checks invariants. */
  afterInput(node: SimNode): void;
  /** Reports an unexpected exception thrown by the core (a violation). */
  coreError(node: SimNode, e: unknown): void;
}
