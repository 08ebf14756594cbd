import { createServer, type Server, type Socket, connect } from 'node:net';

/**
 * A TCP proxy in front of a PostgreSQL server that records the SQL of every query message that
 * reaches the server (simple `Q` and extended-protocol `P` messages): what the server is asked,
 * whatever the client's driver or logger says.
 */
export class WireProxy {
  /** The SQL of each query message, in the order they reached the server. */
  readonly statements: string[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    readonly port: number,
    private readonly server: Server,
  ) {}

  static async start(target: number): Promise<WireProxy> {
    const statements: string[] = [];
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const upstream = connect(target, '127.0.0.1');
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => sockets.delete(socket));
      }
      let buffer = Buffer.alloc(0);
      let started = false;
      client.on('data', (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        for (;;) {
          if (!started) {
            if (buffer.length < 4) break;
            const length = buffer.readInt32BE(0);
            if (buffer.length < length) break;
            buffer = buffer.subarray(length);
            started = true;
            continue;
          }
          if (buffer.length < 5) break;
          const type = String.fromCharCode(buffer[0]!);
          const length = buffer.readInt32BE(1);
          if (buffer.length < 1 + length) break;
          const body = buffer.subarray(5, 1 + length);
          if (type === 'Q') statements.push(body.toString('utf8', 0, body.indexOf(0)));
          if (type === 'P') {
            const name = body.indexOf(0);
            statements.push(body.toString('utf8', name + 1, body.indexOf(0, name + 1)));
          }
          buffer = buffer.subarray(1 + length);
        }
        upstream.write(chunk);
      });
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
    );
    const proxy = new WireProxy(port, server);
    (proxy as { statements: string[] }).statements.push(...statements);
    // Share the array the connection handler fills.
    Object.defineProperty(proxy, 'statements', { value: statements });
    Object.defineProperty(proxy, 'sockets', { value: sockets });
    return proxy;
  }

  /** Forgets what was recorded so far. */
  clear(): void {
    this.statements.length = 0;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** `url` with its port replaced. */
export function withPort(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.port = String(port);
  return parsed.toString();
}
