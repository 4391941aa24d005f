// Spreads logins over event-loop turns. Entering the chat costs work in proportion to who is
// online (an `online` notice to each of them, the online list), and logins that cost no hashing
// (by key or by token) can arrive a thousand at once; entered in one turn they would hold up
// every message relayed meanwhile. A few enter per turn, the rest in the turns after, with the
// sockets' reads and writes in between.

export class EnterPacer {
  private enteredThisTurn = 0;
  private waiting: Array<() => void> = [];
  private nextTurnScheduled = false;

  constructor(private readonly perTurn: number) {}

  /** Resolves when the caller may enter: at once while this turn has room, else in a later turn, in order. */
  turn(): Promise<void> {
    this.scheduleNextTurn();
    if (this.waiting.length === 0 && this.enteredThisTurn < this.perTurn) {
      this.enteredThisTurn += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private scheduleNextTurn(): void {
    if (this.nextTurnScheduled) return;
    this.nextTurnScheduled = true;
    setImmediate(() => {
      this.nextTurnScheduled = false;
      const admitted = this.waiting.splice(0, this.perTurn);
      this.enteredThisTurn = admitted.length;
      if (this.waiting.length > 0) this.scheduleNextTurn();
      for (const resolve of admitted) resolve();
    });
  }
}
