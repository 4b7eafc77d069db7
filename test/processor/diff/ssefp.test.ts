import { groupTest } from './group-check.js';

groupTest('ssefp');
