// Passwords for the CLI: from a prompt without echo on a terminal, or from standard input
// (first line) when it is not a terminal (scripts: `echo secret | amsel adduser a@b`).
import readline from 'node:readline';

async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

function promptHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const out = rl as unknown as { _writeToOutput: (s: string) => void; output: NodeJS.WritableStream };
    let asked = false;
    out._writeToOutput = (s: string) => {
      // Echo the question once, nothing of what is typed.
      if (!asked) { process.stderr.write(s); asked = true; }
    };
    rl.question(question, (answer) => { rl.close(); process.stderr.write('\n'); resolve(answer); });
    rl.on('SIGINT', () => { rl.close(); reject(new Error('cancelled')); });
  });
}

export async function readPassword(question: string, confirm: boolean): Promise<string> {
  let password: string;
  if (process.stdin.isTTY) {
    password = await promptHidden(question);
    if (confirm) {
      const again = await promptHidden('Again: ');
      if (again !== password) throw new Error('the passwords do not match');
    }
  } else {
    password = await readStdinLine();
  }
  if (password.length === 0) throw new Error('empty password');
  return password;
}
