/**
 * One shared wink-nlp instance for the classifier, sentiment and entity models. The English
 * lite model is ~1 MB of tables; loading it once per process (lazily, on the first local model
 * that needs it) keeps start-up cheap for configs that use no local NLP at all.
 */
import winkNLP from 'wink-nlp';
import model from 'wink-eng-lite-web-model';

type Wink = ReturnType<typeof winkNLP>;

let instance: Wink | undefined;

export function wink(): Wink {
  instance ??= winkNLP(model);
  return instance;
}
