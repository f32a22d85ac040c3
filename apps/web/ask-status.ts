/** What the follower form says of a request's status: the relay's view of it, in a line. */

export interface DeclineLite {
  model: { id: string };
  promptTokens: number;
  contextTokens: number;
}

export interface AskStatusView {
  status: string;
  error?: unknown;
  declines?: DeclineLite[];
}

/**
 * The status and its error code; for a request the nodes declined (`DECLINED`: a prompt longer than
 * their model's context), how long it was and how much the model holds, by the decline closest to fitting.
 */
export function askStatusText(view: AskStatusView): string {
  const declines = view.declines ?? [];
  if (view.error === 'DECLINED' && declines.length > 0) {
    const closest = declines.reduce((a, b) => (b.contextTokens > a.contextTokens ? b : a));
    const n = declines.length;
    return `${view.status}: declined by ${n} node${n === 1 ? '' : 's'}, the prompt is ${closest.promptTokens} tokens and ${closest.model.id} holds ${closest.contextTokens}; shorten it`;
  }
  return view.status + (view.error ? ` (${JSON.stringify(view.error)})` : '');
}
