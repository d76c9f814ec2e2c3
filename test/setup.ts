// Run before the test suite: creates the shared test CA and certificate in .amsel-test/
// (the test command then passes the CA to every test process via NODE_EXTRA_CA_CERTS, so that
// independent XMPP clients verify the server's certificate as they would in production).
import { testCertificates } from '../src/testing/index.ts';

const certs = await testCertificates();
process.stdout.write(`test CA: ${certs.caFile}\n`);
