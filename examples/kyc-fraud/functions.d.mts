// Types of functions.mjs, for generate.ts, eval.ts and the test (TypeScript callers).
export interface Customer { id: string; name: string; dob: string; country: string; avg_amount: number; id_image: string; document_number: string }
export interface Transaction { id: string; customer_id: string; amount: number; currency: string; timestamp: string; country: string; merchant: { name: string; category: string }; channel?: string; recent_transactions_1h?: number }
export const MERCHANT_RISK: Record<string, number>;
export function lookupCustomer(input: { customer_id: string }): Customer;
export function featurize(input: { transaction: Transaction; customer: Customer }): Record<string, number>;
export function similarity(a: string, b: string): number;
export function nameScore(a: string, b: string): number;
export function matchIdentity(input: { text: string; confidence?: number; customer: Customer }): { name_read: string; name_score: number; dob_read: string | null; dob_match: boolean; match: boolean; ocr_confidence?: number };
export function screenSanctions(input: { name: string; dob?: string }): { hit: boolean; possible: boolean; score: number; entry: { id: string; name: string; program: string } | null };
