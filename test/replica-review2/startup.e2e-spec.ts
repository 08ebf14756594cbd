/**
 * Round two: what the startup probe (onApplicationBootstrap) decides, and data sources that
 * initialize after app.init(). Checked on the servers: the rows on the primary, the standby's
 * pg_is_in_recovery(), the token's position against the primary's WAL.
 */
import {
  Controller,
  Get,
  Injectable,
  type OnApplicationBootstrap,
  type OnModuleInit,
  Param,
  Post,
} from '@nestjs/common';
import { SessionContext, SessionFactory } from '../../src/index.js';
import { captureLogs, pair, pauseReplay, portOf, resumeReplay } from '../replicas/replica-app.js';
import { ReplicaItem } from '../replicas/replica-item.js';
import { TcpProxy } from '../replicas/tcp-proxy.js';
import {
  createReviewApp,
  HEADER,
  onPrimary,
  primaryLsn,
  type ReviewApp,
  seen,
} from './review-app.js';
import { parseLsn } from '../../src/session/wal-position.js';

@Controller('s')
class StartupController {
  constructor(
    private readonly context: SessionContext,
    private readonly factory: SessionFactory,
  ) {}

  @Post('write/:text')
  async write(@Param('text') text: string): Promise<object> {
    await this.context.session().insert(ReplicaItem, { text });
    return {};
  }

  @Get('read/:text')
  read(@Param('text') text: string) {
    return this.factory.atomic((manager) => seen(manager, text), { readOnly: true });
  }
}

/** Takes the primary's proxy down while the app's modules initialize, up once it bootstrapped. */
const blip = { proxy: undefined as TcpProxy | undefined };

@Injectable()
class PrimaryBlip implements OnModuleInit, OnApplicationBootstrap {
  async onModuleInit(): Promise<void> {
    await blip.proxy!.down();
  }
  async onApplicationBootstrap(): Promise<void> {
    await blip.proxy!.up();
  }
}

const withPort = (url: string, port: number) => {
  const parsed = new URL(url);
  parsed.port = String(port);
  return parsed.toString();
};

describe('Replica review 2: startup', () => {
  let t: ReviewApp | undefined;
  afterEach(async () => {
    await resumeReplay();
    await t?.close();
    t = undefined;
    await blip.proxy?.down();
    blip.proxy = undefined;
  });

  it('a primary briefly unreachable at startup does not turn consistency tokens off for the life of the app', async () => {
    blip.proxy = await TcpProxy.start(portOf(pair().primary));
    const logs = captureLogs();
    t = await createReviewApp({
      primary: withPort(pair().primary, blip.proxy.port),
      context: { consistency: { header: HEADER } },
      controllers: [StartupController],
      providers: [PrimaryBlip],
      logger: logs,
    });
    // The app started (the probe never fails the startup), and the primary is back.
    const before = parseLsn(await primaryLsn())!;
    const response = await t.http().post('/s/write/after-blip').expect(201);
    expect(await onPrimary('after-blip')).toBe(1);
    // The primary can tell its WAL position (it is the same server the tokens suite uses): the
    // write's response names a position at or past where the primary's WAL was before it.
    const token = response.headers[HEADER] as string | undefined;
    expect({
      token,
      warned: logs.lines.filter((line) => line.includes('cannot tell its WAL position')),
    }).toEqual({
      token: expect.stringMatching(/^default=/),
      warned: [],
    });
    expect(parseLsn(token!.split('=')[1])! > before).toBe(true);
    await t.expectClean();
  });

  it('a replicated data source initialized after app.init() (manualInitialization): the app starts, then reads go to the replica and writes make tokens', async () => {
    // app.init() must not fail: the data source is initialized by the app's own code after it.
    t = await createReviewApp({
      context: { consistency: { header: HEADER } },
      controllers: [StartupController],
      extra: { manualInitialization: true },
    });
    await t.dataSource.initialize();
    const read = await t.http().get('/s/read/late').expect(200);
    // The pair's standby: in recovery, on its own port.
    expect(read.body).toEqual({ replica: true, port: portOf(pair().replica), seen: 0 });
    await pauseReplay();
    const write = await t.http().post('/s/write/late-token').expect(201);
    expect(await onPrimary('late-token')).toBe(1);
    expect(write.headers[HEADER]).toMatch(/^default=/);
    await t.expectClean();
  });
});
