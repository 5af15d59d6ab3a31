/**
 * Writes examples/support/data/tickets.jsonl: the labelled set of the support example, written
 * for this project. Each help article has a few hand-written ticket phrasings (subject | body,
 * with {slots}); every phrasing is rendered twice with seeded slots, an opener, a closer and a
 * tone (calm, polite or angry), so the set varies the way real tickets do while every ticket
 * keeps a known intent and the article that answers it. Deterministic: same seed, same file.
 *
 *   npx tsx examples/support/data/generate.ts      # rewrites tickets.jsonl
 *
 * The classifier's training examples (intents.yaml, data/training.yaml) are held out: the script
 * refuses to write a ticket that contains one of them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { mulberry32 as rng } from '../../../src/util/random.js';

const here = import.meta.dirname;

const rand = rng(20261206);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

type Intent = 'billing' | 'account' | 'bug' | 'how_to' | 'cancellation';
/** article id → [intent, phrasings "subject | body"]. */
const PHRASINGS: Record<string, [Intent, string[]]> = {
  'billing-duplicate-charge': ['billing', [
    'Double payment | I see two identical payments of {amount} on my credit card for the same invoice on {date}.',
    'Charged two times | Your system took {amount} from my account twice this month. I only have one subscription.',
    'Duplicate transaction | My bank statement shows the same charge from you twice. Can one of them be returned?',
  ]],
  'billing-invoice': ['billing', [
    'Invoice amount looks wrong | The invoice for {month} says {amount} but our plan should cost less. Why is it higher?',
    'Extra line on invoice | There is a line on my latest invoice I do not understand, something about prorated seats.',
    'Need a receipt | Where can I get a PDF receipt for the payment we made in {month}? Our accountant needs it.',
  ]],
  'billing-update-card': ['billing', [
    'Card expired | My credit card expired and the payment failed. How can I put in the new card?',
    'Change payment method | We want to pay with a different card from now on. Where do I change it?',
    'Payment declined | I got an email that the payment was declined. I have a new card, how do I fix the payment?',
  ]],
  'billing-refund-policy': ['billing', [
    'Refund for remaining months | We paid for a year in {month} but no longer use it. Do we get money back for the months left?',
    'Money back? | Is it possible to get a refund for the time we have not used on the annual plan?',
    'Refund timing | You said a refund was issued, how many days until the money is back on my card?',
  ]],
  'billing-change-plan': ['billing', [
    'Price after upgrade | We upgraded to the business plan and the charge was {amount}. How is the prorated amount calculated?',
    'Switching plans | If I move to a cheaper plan today, when does the new price apply?',
    'Plan cost | How much will we pay if we switch to the bigger plan in the middle of the month?',
  ]],
  'billing-vat': ['billing', [
    'VAT number missing | Our VAT number is not on the invoices, so tax was added. Please correct invoice {ref}.',
    'Tax on invoice | We are a company in Germany with a VAT ID, why are you charging us VAT?',
    'Company address on invoices | The invoices show my personal name instead of our company name and address.',
  ]],
  'billing-trial-charge': ['billing', [
    'Charged after trial | The trial ended and you took {amount} from my card. I did not want to subscribe.',
    'Unexpected payment | I only wanted to test the product for free, why was I billed on {date}?',
    'Trial payment | I forgot to remove my card before the 14 days ended and got charged. Can I get that back?',
  ]],
  'account-reset-password': ['account', [
    'Password reset email | I clicked forgot password three times and no email came. I cannot get into my account.',
    'Cannot log in | I do not remember my password anymore. How do I set a new one?',
    'Reset link expired | The link to reset my password says it has expired. What now?',
  ]],
  'account-locked': ['account', [
    'Locked out | It says my account is locked after I typed the wrong password a few times.',
    'User does not exist | When I try to sign in I get the message that the user does not exist, but I have used it for years.',
    'Too many attempts | I am blocked from signing in after several failed attempts. How long is the lock?',
  ]],
  'account-two-factor': ['account', [
    'New phone, no codes | I changed my phone and the authenticator app is gone. I cannot get the 2FA code.',
    'Lost my phone | My phone was stolen and now I cannot pass two-factor authentication to sign in.',
    'Backup codes | Where do I enter a backup code? The verification code never comes to my phone.',
  ]],
  'account-change-email': ['account', [
    'Update login email | I have a new work address and want to use it to sign in instead of the old one.',
    'Change my email | How do I change the email address on my profile? I no longer use {email}.',
    'Old email gone | My old email account was closed, so I need my login moved to a new address.',
  ]],
  'account-transfer-owner': ['account', [
    'Owner left | The person who owns our workspace left the company. How do we make {name} the owner?',
    'Transfer ownership | I am leaving my job and need to hand the workspace over to a colleague.',
    'Make me the owner | Our admin quit and nobody can manage the account. Can ownership be moved to me?',
  ]],
  'account-sso': ['account', [
    'Google login broken | Sign in with Google does not work for me anymore, it keeps sending me back to the login page.',
    'Single sign-on | Can we set up SAML single sign-on with Okta for our team?',
    'SSO error | Our admin enabled SSO and now I cannot sign in with my password. Which button should I use?',
  ]],
  'account-invite-members': ['account', [
    'Add a colleague | How do I invite {name} to our team so they can see the projects?',
    'Remove a user | {name} left the team. How do I remove them and free the seat?',
    'New team member | I need to add three new people from marketing to our workspace.',
  ]],
  'bug-report': ['bug', [
    'Something is wrong | I keep getting an error with code {ref} whenever I click on the projects tab.',
    'Error message | An error pops up saying something went wrong, please try again, and nothing happens.',
    'Is the site down? | Nothing works for me since this morning, every click shows an error. Is there an outage?',
  ]],
  'bug-app-crash': ['bug', [
    'App keeps crashing | The iPhone app closes by itself every time I open it since the last update.',
    'Android app frozen | The app on my Android phone hangs on the loading screen and never opens.',
    'Mobile crash | The mobile app crashes as soon as I try to open a task. Version {version}.',
  ]],
  'bug-export-fails': ['bug', [
    'Export error | When I export the yearly report it spins for minutes and then fails with an error.',
    'Export button does nothing | I click export on the contacts list and nothing happens at all.',
    'Download broken | The export of our {n} records fails every time with a server error.',
  ]],
  'bug-notifications': ['bug', [
    'No notifications | I stopped receiving notifications when someone mentions me since {date}.',
    'Emails not arriving | Our team does not get any email alerts anymore, not even in spam.',
    'Push notifications | Push notifications on my phone stopped working after the update.',
  ]],
  'bug-blank-page': ['bug', [
    'Blank screen | The dashboard just shows a white page and never loads since your update.',
    'Reports not loading | Reports keep loading forever and then the page is empty.',
    'Wrong numbers | After the latest release the charts on my dashboard show totals that are clearly wrong.',
  ]],
  'bug-upload-fails': ['bug', [
    'Upload failing | Every time I upload a PDF the progress bar stops and shows an error.',
    'Cannot attach files | I get an error when attaching a {n} MB video to a task.',
    'Upload broken | Uploading images fails on every browser I try, with an error message.',
  ]],
  'bug-save-error': ['bug', [
    'Cannot save | When I press save on the customer record I get an error and my changes are lost.',
    'Save fails | The form will not save, it shows a red error at the top with reference {ref}.',
    'Changes not saved | I edit a project, click save, and after reload my edits are gone.',
  ]],
  'bug-search': ['bug', [
    'Search broken | Search returns zero results even for contacts I know exist.',
    'Search error | The search bar shows an error whenever I type more than one word.',
    'Missing in search | I imported {n} records yesterday and none of them show up in search.',
  ]],
  'howto-export-csv': ['how_to', [
    'Export to Excel | How can I get a list of all my contacts into an Excel file?',
    'Download everything | Is there a way to download a copy of all our data?',
    'CSV export | Can I export the tasks table as a CSV to use in another tool?',
  ]],
  'howto-import-contacts': ['how_to', [
    'Import a spreadsheet | I have {n} customers in a spreadsheet. How do I bring them in?',
    'Move from another CRM | We are switching from another CRM. Can we import our contacts?',
    'Import duplicates | When I import a CSV, what happens with people who are already there?',
  ]],
  'howto-recurring-report': ['how_to', [
    'Weekly report email | Can the sales report be emailed to my manager every Monday automatically?',
    'Schedule a report | Is it possible to schedule a report to be sent every month as a PDF?',
    'Automatic reports | I want the dashboard sent to the team every day. How do I set this up?',
  ]],
  'howto-custom-fields': ['how_to', [
    'Extra field | We need a field for the contract number on each customer. Can I add one?',
    'Dropdown field | How can I create a dropdown field with our own options?',
    'Custom data | Is there a way to store our own data, like a region code, on records?',
  ]],
  'howto-api-key': ['how_to', [
    'API access | Where do I get an API key to connect our internal tool?',
    'Developer docs | Do you have an API? I want to pull data into our warehouse.',
    'Token for integration | Our developer needs an API token. Where is it created?',
  ]],
  'howto-share-dashboard': ['how_to', [
    'Share with client | How can I show a dashboard to a client who does not have an account?',
    'Public link | Can I make a read-only link to a dashboard for my boss?',
    'Sharing | What is the way to share a dashboard with {name} from another team?',
  ]],
  'howto-calendar-integration': ['how_to', [
    'Outlook calendar | Can I connect my Outlook calendar so meetings show up?',
    'Google calendar sync | How do I sync my Google calendar with the app?',
    'Calendar connection | Is there an integration with calendars for scheduling meetings?',
  ]],
  'howto-language': ['how_to', [
    'Language setting | How do I switch the interface to French?',
    'Time zone | The times are shown in the wrong time zone. Where can I change it?',
    'Menus in German | Can each user choose their own language for the menus?',
  ]],
  'howto-getting-started': ['how_to', [
    'New user | We just signed up. Is there a tutorial that explains the first steps?',
    'Where to begin | I am new here and a bit lost. Do you have a getting started guide or videos?',
    'Onboarding | What is the best way to set up our workspace for the first time?',
  ]],
  'cancel-subscription': ['cancellation', [
    'Cancel | Please cancel our subscription, we do not need it anymore.',
    'Stop subscription | I want to stop paying for the pro plan. Where is the cancel button?',
    'End my plan | We decided to stop using the service. Cancel the plan from {month}.',
  ]],
  'cancel-delete-account': ['cancellation', [
    'Delete everything | Please delete my account and all my personal data under GDPR.',
    'Close workspace | We are shutting down the workspace. How do we remove all the data for good?',
    'Remove my data | I want my account closed and every file you have about me erased.',
  ]],
  'cancel-auto-renewal': ['cancellation', [
    'No renewal | Do not renew our annual plan in {month}. How do I switch off the renewal?',
    'Auto-renew | I want to make sure the plan does not renew automatically next year.',
    'Stop renewing | Please turn off automatic renewal, we will not continue after this term.',
  ]],
  'cancel-downgrade-free': ['cancellation', [
    'Go back to free | Can I cancel the paid plan and keep using the free version?',
    'Downgrade | We want to drop down to the free plan. What happens to our dashboards?',
    'Cancel paid features | I no longer need the paid features, can we move to the free tier?',
  ]],
  'cancel-pause': ['cancellation', [
    'Pause instead | We are closed for the summer. Can we pause the plan instead of cancelling it?',
    'Hold subscription | Is it possible to put the subscription on hold for two months?',
    'Temporary stop | I want to stop the subscription for a while but not lose my data.',
  ]],
  'cancel-contract': ['cancellation', [
    'Terminate contract | We want to terminate our enterprise contract at the end of the term. What notice is needed?',
    'End the agreement | Consider this our notice to end the annual agreement with you.',
    'Contract termination | How do we end our contract early? The order form was signed in {month}.',
  ]],
};

const OPENERS = ['', '', 'Hi, ', 'Hello, ', 'Hi team, ', 'Good morning, ', 'Hey, '];
const CLOSERS = ['', '', ' Thanks.', ' Thank you!', ' Regards.', ' Thanks in advance.', ' Please help.'];
/** Tone: most tickets are calm; some are polite and grateful; about one in six is angry. */
const ANGRY = [
  ' This is ridiculous and I am furious.',
  ' I am extremely angry, this is the worst service.',
  ' Honestly this is terrible and unacceptable.',
  ' I am fed up, this is a disaster.',
  ' This is awful. I hate wasting my time like this.',
];
const POLITE = [' I love the product otherwise, great work.', ' Your team has always been wonderful, thank you.', ' Really appreciate your help!'];
const NAMES = ['Dana', 'Ravi', 'Mei', 'Tom', 'Lucia', 'Omar', 'Sofia', 'Jonas', 'Aisha', 'Pierre', 'Kenji', 'Nora'];
const MONTHS = ['January', 'March', 'April', 'June', 'August', 'October', 'November'];
const TIERS = ['free', 'pro', 'pro', 'pro', 'enterprise'] as const;

function fill(s: string): string {
  return s
    .replaceAll('{amount}', () => `$${pick([19, 29, 49, 99, 149, 240])}`)
    .replaceAll('{date}', () => `${pick(MONTHS)} ${1 + Math.floor(rand() * 28)}`)
    .replaceAll('{month}', () => pick(MONTHS))
    .replaceAll('{ref}', () => `${pick(['INV', 'ERR', 'REF'])}-${1000 + Math.floor(rand() * 9000)}`)
    .replaceAll('{n}', () => String(pick([40, 250, 1200, 5000, 30000])))
    .replaceAll('{name}', () => pick(NAMES))
    .replaceAll('{email}', () => `${pick(NAMES).toLowerCase()}@oldmail.example`)
    .replaceAll('{version}', () => `4.${Math.floor(rand() * 9)}.${Math.floor(rand() * 9)}`);
}

const held = [join(here, '..', 'intents.yaml'), join(here, 'training.yaml')]
  .flatMap((f) => Object.values(parse(readFileSync(f, 'utf8')) as Record<string, string[]>).flat())
  .map((s) => s.toLowerCase());
const tickets: object[] = [];
let n = 0;
for (const [article, [intent, phrasings]] of Object.entries(PHRASINGS)) {
  for (const p of phrasings) {
    for (let copy = 0; copy < 2; copy++) {
      const [subject, body] = p.split(' | ');
      const r = rand();
      const tone = r < 0.17 ? 'angry' : r < 0.3 ? 'polite' : 'calm';
      const extra = tone === 'angry' ? pick(ANGRY) : tone === 'polite' ? pick(POLITE) : '';
      const customer = pick(NAMES);
      const opener = pick(OPENERS);
      // "Hi, your system…", but "Hi, I…" and "Hi, Google…" keep their capital.
      const first = fill(body);
      const lead = opener && !/^(I |I'|Google|Android)/.test(first) ? first.charAt(0).toLowerCase() + first.slice(1) : first;
      const text = `${opener}${lead}${extra}${pick(CLOSERS)}`;
      const t = { id: `T-${String(++n).padStart(4, '0')}`, customer, tier: pick(TIERS), subject: fill(subject), body: text.charAt(0).toUpperCase() + text.slice(1), intent, articles: [article], tone };
      const lower = `${t.subject} ${t.body}`.toLowerCase();
      const leak = held.find((h) => lower.includes(h));
      if (leak) throw new Error(`ticket ${t.id} contains the training example "${leak}" from the training examples; rephrase one or the other`);
      tickets.push(t);
    }
  }
}
writeFileSync(join(here, 'tickets.jsonl'), `${tickets.map((t) => JSON.stringify(t)).join('\n')}\n`);
process.stdout.write(`wrote ${tickets.length} tickets to ${join(here, 'tickets.jsonl')}\n`);
