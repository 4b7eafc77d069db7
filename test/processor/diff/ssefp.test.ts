import { groupTest } from './group-test.js';

groupTest('ssefp');
